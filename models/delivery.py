"""When an owed notification may go, which rows go together, and the outbox's
bookkeeping (SPEC §5, §7; DESIGN "Delivery").

The rules are plain functions over plain values: quiet hours defer everything
(never drop), members who chose the daily digest get non-urgent stages at the
digest hour, and the urgent stages come at once. The data-access functions
take the session and never commit; tasks.delivery owns the transactions.

A notification row is pending → sent | failed. While pending, `not_before`
says when it may go next: the end of quiet hours, the digest hour, Telegram's
retry_after, the next retry after a 5xx — or, while a delivery job is sending
it, the end of that job's claim (a lease), so no second job sends it
meanwhile and a crashed job's rows come back on their own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    event,
    inspect,
    or_,
    text,
    update,
)
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from models import clock
from models.audit import canonical
from models.tables import Item, Member, Notification

if TYPE_CHECKING:
    from settings import QuietHours

#: Stages that are never held for a digest (SPEC §7: escalations and
#: rejections still come at once; an admin must hear of an unreachable member).
URGENT_STAGES = frozenset({"rejected", "escalate-1", "escalate-2", "unreachable"})
#: The stage owed to an admin when a member's (or a chat's) sends answer 403.
UNREACHABLE = "unreachable"
#: The stage of a member's daily digest row (one a day, written by the scheduler).
DIGEST = "digest"
#: Local time at which members who chose /digest on get the day's pushes.
DIGEST_TIME = time(18, 0)
#: Rows bundled into one message at most (more wait for the next one, a second
#: later); ten items' lines stay well within Telegram's 4,096 characters.
BUNDLE_MAX = 10

PENDING, SENT, FAILED = "pending", "sent", "failed"


# -- the rules ----------------------------------------------------------------------------


def is_urgent(stage: str) -> bool:
    return stage in URGENT_STAGES


def quiet_until(moment: datetime, quiet: QuietHours | None, zone: ZoneInfo) -> datetime | None:
    """The end (UTC) of the quiet window `moment` falls in, or None when it is not quiet.

    The window is local time in `zone` and may cross midnight (22:00-07:30):
    at 23:00 it ends tomorrow at 07:30, at 06:00 today at 07:30.
    """
    if quiet is None:
        return None
    local = moment.astimezone(zone)
    if not quiet.contains(local.time()):
        return None
    end_day = local.date()
    if quiet.start > quiet.end and local.time() >= quiet.start:
        end_day += timedelta(days=1)
    return datetime.combine(end_day, quiet.end, tzinfo=zone).astimezone(UTC)


def next_digest(moment: datetime, zone: ZoneInfo, at: time = DIGEST_TIME) -> datetime:
    """The first digest moment (local `at`) at or after `moment`, in UTC."""
    local = moment.astimezone(zone)
    candidate = datetime.combine(local.date(), at, tzinfo=zone)
    if candidate < local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=zone)
    return candidate.astimezone(UTC)


def release_time(
    *,
    stage: str,
    created_at: datetime,
    not_before: datetime | None,
    digest: bool,
    now: datetime,
    zone: ZoneInfo,
    quiet: QuietHours | None,
    digest_time: time = DIGEST_TIME,
) -> datetime | None:
    """When a row may be sent: None for now, else the moment (UTC) to try again.

    In order: its own `not_before`; for a digest member and a non-urgent stage,
    the first digest moment after the row was owed (a row owed before today's
    digest goes with it, one owed after waits for tomorrow's); then, if that
    moment falls in quiet hours, the end of them. Nothing is ever dropped.
    """
    at = now
    if not_before is not None and not_before > at:
        at = not_before
    if digest and not is_urgent(stage):
        at = max(at, next_digest(created_at, zone, digest_time))
    quiet_end = quiet_until(at, quiet, zone)
    if quiet_end is not None:
        at = quiet_end
    return at if at > now else None


def notification_data(row: Notification) -> dict[str, Any]:
    try:
        data = json.loads(row.data or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def attachment_ids(row: Notification) -> list[int]:
    """The Attachment ids the row carries (data["attachments"]), in order."""
    ids = notification_data(row).get("attachments") or []
    return [int(value) for value in ids if str(value).isdigit()]


def bundleable(row: Notification) -> bool:
    """Rows without files can share a message; a row with files goes alone."""
    return not attachment_ids(row)


# -- who gets it --------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    """Where a row goes: a member's private chat or a chat, in which language."""

    chat_id: int | None
    lang: str
    member_id: int | None = None
    digest: bool = False
    name: str = ""
    code: str = ""
    #: Why nothing can be sent (unbound, unreachable); None when it can.
    problem: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.code})" if self.member_id else f"chat {self.chat_id}"


def recipient_of(session: Session, row: Notification, default_lang: str) -> Recipient:
    """The row's recipient: its member (chat, language, digest) or its chat."""
    member = session.get(Member, row.recipient_id) if row.recipient_id is not None else None
    return _recipient(row, member, default_lang)


def _recipient(row: Notification, member: Member | None, default_lang: str) -> Recipient:
    # `member`: the row's recipient, read by the caller (None: missing, or a chat's row).
    if row.recipient_id is None:
        return Recipient(chat_id=row.chat_id, lang=default_lang)
    if member is None:
        return Recipient(None, default_lang, row.recipient_id, problem="no such member")
    recipient = Recipient(
        chat_id=member.chat_id,
        lang=member.language or default_lang,
        member_id=member.id,
        digest=member.digest,
        name=member.name,
        code=member.code,
    )
    if member.chat_id is None:
        return _with_problem(recipient, "unbound: the member has no Telegram account bound")
    if member.unreachable_at is not None:
        since = member.unreachable_at.isoformat(timespec="seconds")
        return _with_problem(recipient, f"unreachable since {since} (blocked the bot)")
    return recipient


def _with_problem(recipient: Recipient, problem: str) -> Recipient:
    return Recipient(
        recipient.chat_id,
        recipient.lang,
        recipient.member_id,
        recipient.digest,
        recipient.name,
        recipient.code,
        problem,
    )


# -- claiming a bundle -----------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    """The deployment's delivery settings the claim applies."""

    zone: ZoneInfo
    quiet: QuietHours | None
    language: str
    digest_time: time = DIGEST_TIME


@dataclass(frozen=True)
class Gone:
    """Nothing to do: the row is sent, failed or missing."""

    status: str


@dataclass(frozen=True)
class Later:
    """The row may not go yet; try again at `at` (UTC).

    `deferred`: a job must be enqueued for `at` — this claim set `not_before`
    (quiet hours, the digest), or the chat's flood window is busy until then
    (the row is left as it was). Otherwise the row was already waiting (another
    job's lease, or a deferral that enqueued its own job) and `lease_end` says
    until when a claim could hold it.
    """

    at: datetime
    deferred: bool = False
    lease_end: datetime | None = None


@dataclass(frozen=True)
class Undeliverable:
    """The row was marked failed: nobody to send it to."""

    reason: str
    recipient: Recipient


@dataclass(frozen=True)
class Claimed:
    """The rows to send now as one message, own row first, leased until `until`."""

    rows: tuple[Notification, ...]
    recipient: Recipient
    until: datetime

    @property
    def ids(self) -> list[int]:
        return [row.id for row in self.rows if row.id is not None]


Claim = Gone | Later | Undeliverable | Claimed


def _release(
    row: Notification, recipient: Recipient, rules: Rules, now: datetime
) -> datetime | None:
    return release_time(
        stage=row.stage,
        created_at=row.created_at,
        not_before=row.not_before,
        digest=recipient.digest,
        now=now,
        zone=rules.zone,
        quiet=rules.quiet,
        digest_time=rules.digest_time,
    )


#: PostgreSQL advisory lock classes: one job at a time claims for a member, or a chat.
MEMBER_LOCK, CHAT_LOCK = 7105, 7106

#: A recipient: ("member", member id) or ("chat", chat id).
RecipientKey = tuple[str, int]


def _recipient_key(row: Notification) -> RecipientKey:
    if row.recipient_id is not None:
        return ("member", row.recipient_id)
    return ("chat", row.chat_id or 0)


def _lock_recipients(session: Session, keys: Iterable[RecipientKey]) -> None:
    # Claims for one recipient take turns (until their transaction ends), so two
    # jobs for two of a person's rows cannot each send a part of the bundle.
    # Taken in one order (class, then id) by every job, so jobs claiming for
    # several recipients at once cannot deadlock. SQLite's write lock (BEGIN
    # IMMEDIATE) already serialises every claim.
    if session.get_bind().dialect.name != "postgresql":
        return
    for kind, lock in (("member", MEMBER_LOCK), ("chat", CHAT_LOCK)):
        ids = sorted({(value + 2**31) % 2**32 - 2**31 for k, value in keys if k == kind})
        if ids:
            session.execute(
                text(
                    "SELECT pg_advisory_xact_lock(:key, id) "
                    "FROM (SELECT unnest(CAST(:ids AS integer[])) AS id ORDER BY 1) AS ordered"
                ),
                {"key": lock, "ids": ids},
            )


def _of_recipients(keys: Iterable[RecipientKey]) -> ColumnElement[bool]:
    members = [value for kind, value in keys if kind == "member"]
    chats = [value for kind, value in keys if kind == "chat"]
    clauses: list[ColumnElement[bool]] = []
    if members:
        clauses.append(col(Notification.recipient_id).in_(members))
    if chats:
        clauses.append(
            and_(col(Notification.chat_id).in_(chats), col(Notification.recipient_id).is_(None))
        )
    return or_(*clauses)


def claim(
    session: Session,
    notification_id: int,
    *,
    rules: Rules,
    bundle_max: int,
    lease: timedelta,
    busy: Callable[[Sequence[int]], Sequence[float]] | None = None,
) -> Claim:
    """Take the row (and the recipient's other rows due now) for one message;
    `claim_many` for one row."""
    [(_, outcome)] = claim_many(
        session, [notification_id], rules=rules, bundle_max=bundle_max, lease=lease, busy=busy
    )
    return outcome


def claim_many(
    session: Session,
    notification_ids: Sequence[int],
    *,
    rules: Rules,
    bundle_max: int,
    lease: timedelta,
    budget: timedelta = timedelta(0),
    busy: Callable[[Sequence[int]], Sequence[float]] | None = None,
) -> list[tuple[int, Claim]]:
    """For each recipient of the given rows, take its first given row (its own
    row) and the recipient's other rows due now, for one message each.

    Returns (own row id, outcome) per recipient (the claims in the order of
    their own rows) and (id, Gone) for each given row already sent, failed or
    missing. A given
    row that is neither an own row nor carried by its recipient's claim (it has
    files, or did not fit) is left pending for a job of its own.

    Claims for one recipient take turns (a PostgreSQL advisory lock; SQLite's
    write lock), the own rows are locked FOR UPDATE and the others with SKIP
    LOCKED (a row another transaction is writing is left for its job); the rows
    taken get `not_before = now + budget + lease` (`budget`: how long the job
    may spend on the messages before this one; a lease per Bot API call the
    message needs), which no other job's claim passes until the lease ends. A
    row that may not go yet is deferred here (`not_before` set) and reported
    as Later; an unbound or unreachable member's row is marked failed.
    `busy(chat_ids)` says how long each chat's flood windows are full (0:
    not): a row whose chat is busy is left untouched and reported Later, before
    any work is done.
    """
    wanted = sorted(set(notification_ids))
    found = {row.id: row for row in session.exec(_ROWS, params={"ids": wanted})}
    outcomes: list[tuple[int, Claim]] = []
    # Sent and failed are final: a job a bundle left idle (three of a member's
    # four rows in a fan-out) ends here, without taking the recipient's lock.
    own_of: dict[RecipientKey, int] = {}
    for notification_id in wanted:
        row = found.get(notification_id)
        if row is None or row.status != PENDING:
            outcomes.append((notification_id, Gone(row.status if row else "missing")))
        else:
            own_of.setdefault(_recipient_key(row), notification_id)
    if not own_of:
        return outcomes
    _lock_recipients(session, own_of)
    owns = {
        row.id: row
        for row in session.exec(
            select(Notification)
            .where(col(Notification.id).in_(sorted(own_of.values())))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }
    member_ids = [value for kind, value in own_of if kind == "member"]
    members = {
        member.id: member
        for member in session.exec(select(Member).where(col(Member.id).in_(member_ids)))
    }
    # Asked once the rows are ours: a claim that held them before us is in the past.
    now = clock.now()
    ready: dict[RecipientKey, tuple[Notification, Recipient]] = {}
    for key, notification_id in own_of.items():
        row = owns.get(notification_id)
        member = members.get(row.recipient_id) if row is not None else None
        outcome = _own_outcome(session, row, member, rules, lease, budget, now)
        if isinstance(outcome, Recipient):
            assert row is not None
            ready[key] = (row, outcome)
        else:
            outcomes.append((notification_id, outcome))
    if busy is not None and ready:
        keys = list(ready)
        waits = busy([ready[key][1].chat_id or 0 for key in keys])
        for key, wait in zip(keys, waits, strict=True):
            if wait > 0:
                own = ready.pop(key)[0]
                assert own.id is not None
                outcomes.append((own.id, Later(now + timedelta(seconds=wait), deferred=True)))
    others: dict[RecipientKey, list[Notification]] = {}
    bundling = [key for key, (row, _) in ready.items() if bundleable(row) and bundle_max > 1]
    if bundling:
        for other in session.exec(
            select(Notification)
            .where(
                Notification.status == PENDING,
                _of_recipients(bundling),
                col(Notification.id).not_in([ready[key][0].id for key in bundling]),
                or_(col(Notification.not_before).is_(None), col(Notification.not_before) <= now),
            )
            .order_by(col(Notification.id))
            # Bounded: a digest member's held rows are read, not taken.
            .limit(len(bundling) * bundle_max * 3)
            .with_for_update(skip_locked=True)
        ):
            others.setdefault(_recipient_key(other), []).append(other)
    leases: dict[datetime, list[Notification]] = {}
    for key, (row, recipient) in ready.items():
        rows = [row]
        for other in others.get(key, ()):
            if len(rows) >= bundle_max:
                break
            if bundleable(other) and _release(other, recipient, rules, now) is None:
                rows.append(other)
        # Each call (the text, then each file) may take the client's whole deadline.
        until = now + budget + lease * (1 + len(attachment_ids(row)))
        leases.setdefault(until, []).extend(rows)
        assert row.id is not None
        outcomes.append((row.id, Claimed(tuple(rows), recipient, until)))
    for until, taken in leases.items():
        # One UPDATE per lease, not one per row (the unit of work's way).
        session.connection().execute(_LEASE, {"ids": [row.id for row in taken], "until": until})
        for row in taken:
            set_committed_value(row, "not_before", until)
    return outcomes


#: The given rows, read without a lock: most of a fan-out's are sent already.
_ROWS = select(Notification).where(col(Notification.id).in_(bindparam("ids", expanding=True)))


def _own_outcome(
    session: Session,
    row: Notification | None,
    member: Member | None,
    rules: Rules,
    lease: timedelta,
    budget: timedelta,
    now: datetime,
) -> Claim | Recipient:
    # What becomes of a locked own row; its recipient when it may go now.
    if row is None or row.status != PENDING:
        return Gone(row.status if row else "missing")
    if row.not_before is not None and row.not_before > now:
        lease_end = now + budget + lease * (1 + len(attachment_ids(row)))
        return Later(row.not_before, lease_end=lease_end)
    recipient = _recipient(row, member, rules.language)
    if recipient.problem is not None or recipient.chat_id is None:
        reason = recipient.problem or "no chat to send to"
        _fail(row, reason)
        session.add(row)
        return Undeliverable(reason, recipient)
    at = _release(row, recipient, rules, now)
    if at is not None:
        row.not_before, row.enqueued_at = at, now
        session.add(row)
        return Later(at, deferred=True)
    return recipient


# -- after a send, or a failure ------------------------------------------------------------------


def _rows(session: Session, ids: Iterable[int]) -> list[Notification]:
    ids = list(ids)
    if not ids:
        return []
    return list(session.exec(select(Notification).where(col(Notification.id).in_(ids))).all())


_NOTIFICATIONS: Table = Notification.__table__  # type: ignore[attr-defined]  # set by SQLAlchemy
#: Built once: every message a worker sends runs it (past the ORM, whose
#: bulk-update path cost more CPU than the UPDATE itself).
_MARK_SENT = (
    update(_NOTIFICATIONS)
    .where(
        _NOTIFICATIONS.c.id.in_(bindparam("ids", expanding=True)),
        _NOTIFICATIONS.c.status == PENDING,
    )
    .values(
        status=SENT, sent_at=bindparam("now"), message_id=bindparam("message_id"), not_before=None
    )
)


_LEASE = (
    update(_NOTIFICATIONS)
    .where(_NOTIFICATIONS.c.id.in_(bindparam("ids", expanding=True)))
    .values(not_before=bindparam("until"))
)


def mark_sent(
    session: Session, ids: Sequence[int], *, message_id: int | None, now: datetime
) -> None:
    """The rows went out in message `message_id` (one UPDATE)."""
    if ids:
        session.connection().execute(
            _MARK_SENT, {"ids": list(ids), "now": now, "message_id": message_id}
        )


def release(session: Session, ids: Sequence[int]) -> None:
    """Claimed rows that did not fit the message: due again at once."""
    for row in _rows(session, ids):
        if row.status == PENDING:
            row.not_before = None
            session.add(row)


def defer(session: Session, ids: Sequence[int], *, until: datetime, now: datetime) -> None:
    """The rows wait until `until` (a job is enqueued for then)."""
    for row in _rows(session, ids):
        if row.status == PENDING:
            row.not_before, row.enqueued_at = until, now
            session.add(row)


def _fail(row: Notification, reason: str) -> None:
    row.status, row.not_before = FAILED, None
    row.last_error = reason[:1000]


def mark_failed(session: Session, ids: Sequence[int], *, reason: str) -> None:
    """The rows cannot be delivered; `closeout notifications --failed` lists them."""
    for row in _rows(session, ids):
        if row.status == PENDING:
            _fail(row, reason)
            session.add(row)


def record_attempt(
    session: Session,
    ids: Sequence[int],
    *,
    error: str,
    now: datetime,
    retry_at: datetime,
    max_attempts: int,
) -> list[int]:
    """Count a failed attempt; rows past `max_attempts` fail, the rest wait for `retry_at`.

    Returns the ids still pending (to enqueue at `retry_at`).
    """
    waiting = []
    for row in _rows(session, ids):
        if row.status != PENDING:
            continue
        row.attempts += 1
        row.last_error = error[:1000]
        if row.attempts >= max_attempts:
            _fail(row, f"gave up after {row.attempts} attempts: {error}")
        else:
            row.not_before, row.enqueued_at = retry_at, now
            assert row.id is not None
            waiting.append(row.id)
        session.add(row)
    return waiting


def mark_unreachable(session: Session, member_id: int, *, now: datetime) -> bool:
    """Note that the member's chat answers 403; True the first time."""
    member = session.get(Member, member_id)
    if member is None or member.unreachable_at is not None:
        return False
    member.unreachable_at = now
    session.add(member)
    return True


# -- the pump ------------------------------------------------------------------------------


def lost_rows(
    session: Session, *, now: datetime, grace: timedelta, fresh_grace: timedelta, limit: int
) -> list[int]:
    """Pending rows that are due and whose job is late enough to count as lost.

    A row never enqueued counts after `fresh_grace` (its writer had that long
    to enqueue it); a row enqueued, deferred or claimed counts once both its
    last enqueue and its `not_before` are `grace` behind.
    """
    cutoff = now - grace
    nb, enqueued = col(Notification.not_before), col(Notification.enqueued_at)
    never = and_(
        enqueued.is_(None),
        col(Notification.created_at) <= now - fresh_grace,
        or_(nb.is_(None), nb <= now),
    )
    late = and_(enqueued <= cutoff, or_(nb.is_(None), nb <= cutoff))
    return [
        row_id
        for row_id in session.exec(
            select(Notification.id)
            .where(Notification.status == PENDING, or_(never, late))
            .order_by(col(Notification.id))
            .limit(limit)
        ).all()
        if row_id is not None
    ]


def owed_by(session: Session, moment: datetime) -> bool:
    """Whether a pending row may go by `moment`: its `not_before` is unset or not
    after it (a row held for later — a lease, a retry_after, the digest hour — is not)."""
    nb = col(Notification.not_before)
    found = session.exec(
        select(Notification.id)
        .where(Notification.status == PENDING, or_(nb.is_(None), nb <= moment))
        .limit(1)
    ).first()
    return found is not None


def mark_enqueued(session: Session, ids: Sequence[int], *, now: datetime) -> None:
    """The rows' jobs were (are about to be) enqueued now."""
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        session.execute(
            update(Notification)
            .where(col(Notification.id).in_(chunk), col(Notification.status) == PENDING)
            .values(enqueued_at=now)
        )


# -- after commit: what a transaction owed and changed ---------------------------------------------


@dataclass(frozen=True)
class Changes:
    """What a committed transaction owes the queue: deliveries, and cards to refresh."""

    notifications: tuple[int, ...] = ()
    items: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.notifications or self.items)


@dataclass
class OutboxWatch:
    """Watches one session's transaction for owed notifications and changed items.

    Notifications are owed with INSERT … ON CONFLICT (models.outbox), which
    does not hand back ids, so the watch only notes that the transaction
    inserted into the outbox and, in `seal`, finds the pending rows created
    since it began that no job was enqueued for — a concurrent writer's rows
    may come along, which costs one idle job, never a message. Items whose
    `version` was bumped through the ORM are noted for `refresh_cards`.
    """

    session: Session
    started: datetime = field(default_factory=clock.now)
    owed: bool = False
    items: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        event.listen(self.session, "do_orm_execute", self._on_execute)
        event.listen(self.session, "after_flush", self._on_flush)

    def _on_execute(self, state: ORMExecuteState) -> None:
        table = getattr(state.statement, "table", None)
        if state.is_insert and getattr(table, "name", None) == Notification.__tablename__:
            self.owed = True

    def _on_flush(self, session: Session, _context: Any) -> None:
        for obj in session.new:
            if isinstance(obj, Notification):
                self.owed = True
        for obj in session.dirty:
            if (
                isinstance(obj, Item)
                and obj.number is not None
                and inspect(obj).attrs.version.history.has_changes()
            ):
                self.items.add(obj.number)

    def seal(self, session: Session) -> Changes:
        """Before commit: the owed rows' ids (marked enqueued now) and the changed items."""
        session.flush()
        event.remove(self.session, "do_orm_execute", self._on_execute)
        event.remove(self.session, "after_flush", self._on_flush)
        ids: list[int] = []
        if self.owed:
            ids = [
                row_id
                for row_id in session.exec(
                    select(Notification.id).where(
                        Notification.status == PENDING,
                        col(Notification.enqueued_at).is_(None),
                        col(Notification.created_at) >= self.started,
                    )
                ).all()
                if row_id is not None
            ]
            mark_enqueued(session, ids, now=clock.now())
        return Changes(tuple(sorted(ids)), tuple(sorted(self.items)))


# -- a message in parts: the text, then its files --------------------------------------------------

#: Key in a row's data counting the files already sent (a retry sends the rest).
FILES_SENT = "files_sent"


def files_sent(row: Notification) -> int:
    return int(notification_data(row).get(FILES_SENT) or 0)


def note_progress(session: Session, notification_id: int, *, message_id: int, files: int) -> None:
    """The row's text went out as `message_id` and its first `files` files after it."""
    row = session.get(Notification, notification_id)
    if row is None or row.status != PENDING:
        return
    data = notification_data(row)
    data[FILES_SENT] = files
    row.message_id = message_id
    row.data = canonical(data)
    session.add(row)
