"""Delivery: from an owed notification row to a Telegram message (SPEC §5, §7;
DESIGN "Delivery").

    deliver(*notification_ids)   send the rows, each bundled with its recipient's other due rows
    pump()                       re-enqueue due rows whose job was lost or is late
    refresh_cards(item_number)   edit the item's recorded cards in place

The row is the truth, the queue only a reminder: every decision (deferred,
retried, failed, sent) is written on the row before the job ends, so any job
for the row — a duplicate, a retry, the pump's — takes up where the last left.

A fan-out (the sweep's thousands of rows) is enqueued in chunks of
DELIVER_BATCH rows: a job claims and renders the messages of all its rows'
recipients with a fixed number of statements, then sends them one after
another, each marked sent as soon as Telegram answers, on one connection.

How often can a message arrive twice? A delivery job claims its rows in one
short transaction (row locks, then a lease in `not_before` that outlasts its
Bot API calls, see models.delivery.claim_many), sends, and marks each message's
rows sent in a transaction of its own right after its call. A second job for
the same rows finds them claimed or sent and does nothing; the at-least-once
queue, the pump and the retries can only add such idle jobs. The one window is
between a Bot API call and its mark: if the process dies there (kill -9,
power), or the call's answer is lost (a time-out after Telegram acted, the
mark's commit failing), the rows are still pending when the lease ends and that
one message is sent again — once per such crash, and only that message (the
job's messages not sent yet come back unsent when the lease ends). Nothing else
sends twice.

Telegram's answers (tasks.telegram):
    429  → not_before = now + retry_after, enqueued with that delay; not a failure
    5xx, time-outs → attempts + 1 and last_error; retried with back-off
           (RETRY_MIN doubling up to RETRY_MAX); failed after MAX_ATTEMPTS
    403  → the member is unreachable (or the bot left the chat): the rows fail,
           and every admin is owed one "unreachable" notification per member
    400  → failed, with Telegram's description
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

import dramatiq
from sqlalchemy import Connection, Engine
from sqlmodel import Session, col, select

from models import clock
from models.cards import SentCard, remember_cards
from models.db import transaction
from models.delivery import (
    UNREACHABLE,
    Changes,
    Claim,
    Claimed,
    Later,
    OutboxWatch,
    Recipient,
    Rules,
    Undeliverable,
    attachment_ids,
    claim_many,
    defer,
    files_sent,
    lost_rows,
    mark_enqueued,
    mark_failed,
    mark_sent,
    mark_unreachable,
    note_progress,
    record_attempt,
    release,
)
from models.holidays import load_calendar
from models.outbox import notify
from models.people import admins
from models.summaries import Facts
from models.tables import Attachment, Card, Item, Member, Notification
from models.texts import LANGS, t
from models.workdays import WorkCalendar
from tasks import Runtime, runtime
from tasks.broker import configured_broker, queue_backlog
from tasks.limiter import MAX_INLINE_WAIT
from tasks.rendering import Push, card_for, render, render_many
from tasks.telegram import BadRequest, Forbidden, Request, RetryAfter, Transient

log = logging.getLogger(__name__)

#: The queue of the delivery actors.
QUEUE = "delivery"
#: How long a job's claim on its rows lasts, per Bot API call the message needs;
#: longer than a call can take (tasks.telegram.CALL_DEADLINE).
CLAIM_LEASE = timedelta(seconds=30)
#: Rows one delivery job is given at most (a fan-out's rows are enqueued in
#: chunks): claimed, rendered and marked with a fixed number of statements
#: whatever their count, sent one after another.
DELIVER_BATCH = 25
#: How long a job may spend sending its messages after its claim; the claim's
#: lease outlasts it by CLAIM_LEASE. Messages not sent by then are released to
#: a new job (many workers sharing Telegram's 30 a second can each get few: 16
#: threads get about 2 a second each). Short, because a crashed job's claims
#: wait out the whole lease before they are sent again.
BATCH_BUDGET = timedelta(seconds=15)
#: Attempts (5xx, time-outs) before a row is marked failed.
MAX_ATTEMPTS = 10
#: Back-off before the first retry; it doubles with each attempt.
RETRY_MIN = 1.0  # seconds
#: Longest back-off between two attempts.
RETRY_MAX = 300.0  # seconds
#: Random extra back-off, as a fraction, so retries of many rows spread out.
RETRY_JITTER = 0.2
#: A due row whose job is this late (after its enqueue and its not_before)
#: counts as lost, and the pump enqueues it again …
PUMP_GRACE = timedelta(seconds=60)
#: … or this late while the queue has a backlog (a big fan-out takes minutes
#: at Telegram's 30 a second; its jobs are late, not lost).
PUMP_BUSY_GRACE = timedelta(minutes=15)
#: A row nobody enqueued (written by another process) is picked up after this.
FRESH_GRACE = timedelta(seconds=5)
#: Rows one pump run enqueues at most.
PUMP_BATCH = 5000
#: How often `closeout run` pumps; the scheduler's calendar does the same.
PUMP_INTERVAL = 5.0  # seconds
#: A pump message older than this is dropped: a newer one is on its way.
PUMP_MAX_AGE = 60_000  # ms
#: Wait before editing cards, so the bot's own edit of the card pressed lands first.
REFRESH_DELAY = 2_000  # ms
#: Time limit of a delivery job (a text and its files, each within the client's deadline).
DELIVER_TIME_LIMIT = 5 * 60 * 1000  # ms
#: Retries of a job that raised (the database went away); Telegram's errors do not raise.
JOB_MAX_RETRIES = 5
#: First back-off of such a retry.
JOB_MIN_BACKOFF = 2_000  # ms


# -- the actors ------------------------------------------------------------------------------


@dramatiq.actor(
    broker=configured_broker(),
    queue_name=QUEUE,
    max_retries=JOB_MAX_RETRIES,
    min_backoff=JOB_MIN_BACKOFF,
    time_limit=DELIVER_TIME_LIMIT,
)
def deliver(*notification_ids: int) -> None:
    """Send notifications `notification_ids` — each with its recipient's other
    rows due now, one message per recipient — and mark them sent.

    Run twice, the second run finds the rows sent (or claimed by the first)
    and does nothing; see the module's docstring for the one window in which a
    crash repeats a message.
    """
    deliver_now(runtime(), *notification_ids)


@dramatiq.actor(broker=configured_broker(), queue_name=QUEUE, max_retries=0, max_age=PUMP_MAX_AGE)
def pump() -> None:
    """Enqueue `deliver` for due pending rows whose job is lost or late.

    Idempotent: a row it enqueues twice gets one message (the second job is idle).
    """
    pump_once(runtime())


@dramatiq.actor(
    broker=configured_broker(),
    queue_name=QUEUE,
    max_retries=JOB_MAX_RETRIES,
    min_backoff=JOB_MIN_BACKOFF,
)
def refresh_cards(item_number: int) -> None:
    """Edit in place every recorded card of item `item_number` older than the item.

    Run twice, the second run finds the cards current and edits nothing.
    """
    refresh_now(runtime(), item_number)


# -- enqueueing ------------------------------------------------------------------------------


def enqueue_changes(changes: Changes) -> None:
    """After a commit: deliver what it owed, refresh the cards of the items it changed.

    The `enqueue` callable the bot's Services and other writers call.
    """
    _deliver_in_batches(changes.notifications)
    for number in changes.items:
        refresh_cards.send_with_options(args=(number,), delay=REFRESH_DELAY)


@contextmanager
def owing(engine: Engine) -> Iterator[Session]:
    """A transaction (as models.db.transaction) whose owed notifications are
    enqueued for delivery, and changed items' cards refreshed, after it commits.

    For writers outside the bot (sweeps, bulletins) that want their rows sent
    within seconds rather than at the pump's next look.
    """
    with transaction(engine) as session:
        watch = OutboxWatch(session)
        yield session
        changes = watch.seal(session)
    enqueue_changes(changes)


def _deliver_in_batches(ids: Sequence[int]) -> None:
    for start in range(0, len(ids), DELIVER_BATCH):
        deliver.send(*ids[start : start + DELIVER_BATCH])


def _enqueue_at(notification_id: int, at: datetime) -> None:
    delay = int((at - clock.now()).total_seconds() * 1000)
    if delay > 0:
        deliver.send_with_options(args=(notification_id,), delay=delay)
    else:
        deliver.send(notification_id)


def pump_once(
    rt: Runtime, *, grace: timedelta | None = None, fresh_grace: timedelta = FRESH_GRACE
) -> int:
    """Enqueue the rows `lost_rows` finds; returns how many.

    `grace` None: PUMP_GRACE, or PUMP_BUSY_GRACE while the delivery queue has a
    backlog. `grace=0` on start-up of the in-process broker, whose queue a
    restart emptied.
    """
    if grace is None:
        grace = PUMP_BUSY_GRACE if queue_backlog(rt.broker, QUEUE) else PUMP_GRACE
    now = clock.now()
    with transaction(rt.engine) as session:
        ids = lost_rows(session, now=now, grace=grace, fresh_grace=fresh_grace, limit=PUMP_BATCH)
        mark_enqueued(session, ids, now=now)
    _deliver_in_batches(ids)
    if ids:
        log.info("pump: enqueued %d pending notifications", len(ids))
    return len(ids)


# -- deliver ---------------------------------------------------------------------------------


def _rules(rt: Runtime) -> Rules:
    settings = rt.settings
    return Rules(zone=settings.zone, quiet=settings.QUIET_HOURS, language=settings.LANGUAGE)


#: How long a worker reuses the working-day calendar it loaded (holidays change
#: by an admin's import, a few times a year).
CALENDAR_TTL = 60.0  # seconds
_calendar: tuple[float, Engine, WorkCalendar] | None = None


def _facts(rt: Runtime, session: Session) -> Facts:
    global _calendar
    if _calendar is None or _calendar[1] is not rt.engine or time.monotonic() > _calendar[0]:
        _calendar = (time.monotonic() + CALENDAR_TTL, rt.engine, load_calendar(session))
    return Facts(
        today=clock.today(rt.settings.zone), calendar=_calendar[2], warn_days=rt.settings.WARN_DAYS
    )


def deliver_now(rt: Runtime, *notification_ids: int) -> None:
    """The body of `deliver`, for the actor and for tests."""
    # One connection for the job's transactions (the claim, then a mark per
    # message): checked out, and pinged, once.
    with rt.engine.connect() as connection:
        _deliver(rt, connection, notification_ids)


def _deliver(rt: Runtime, bind: Connection, notification_ids: Sequence[int]) -> None:
    budget = BATCH_BUDGET if len(notification_ids) > 1 else timedelta(0)
    started = time.monotonic()
    with transaction(bind) as session:
        outcomes = claim_many(
            session,
            notification_ids,
            rules=_rules(rt),
            bundle_max=rt.bundle_max,
            lease=CLAIM_LEASE,
            budget=budget,
            busy=lambda chat_ids: _busy(rt, chat_ids),
        )
        claims = [outcome for _, outcome in outcomes if isinstance(outcome, Claimed)]
        # Rendered in the claim's transaction: one round trip fewer per message.
        pushes = _render(rt, session, claims)
    handled = {notification_id for notification_id, _ in outcomes}
    handled.update(row_id for claimed in claims for row_id in claimed.ids)
    # Given rows their recipient's message does not carry (files go alone; more
    # than a message holds), and rows that did not fit, go in a job of their own.
    rest = [row_id for row_id in notification_ids if row_id not in handled]
    rest += [push.left_out[0] for push in pushes if push is not None and push.left_out]
    if rest:
        deliver.send(*sorted(set(rest)))
    for notification_id, outcome in outcomes:
        _not_claimed(notification_id, outcome)
    for index, (claimed, push) in enumerate(zip(claims, pushes, strict=True)):
        # The first message always goes: a job handing everything on would loop.
        if index and budget and time.monotonic() - started > budget.total_seconds():
            _hand_on(bind, claims[index:])
            return
        if push is not None:
            _send_claimed(rt, bind, claimed, push)


def _not_claimed(notification_id: int, outcome: Claim) -> None:
    if isinstance(outcome, Later):
        # A row waiting no longer than a claim lasts is claimed by a live job, or
        # deferred by one that enqueued itself for then: nothing to add (should
        # that job die, the pump takes over). A row waiting longer may have no
        # job for then (written with a not_before): one is enqueued for then.
        if outcome.deferred or outcome.lease_end is None or outcome.at > outcome.lease_end:
            _enqueue_at(notification_id, outcome.at)
    elif isinstance(outcome, Undeliverable):
        log.info("notification %d not delivered: %s", notification_id, outcome.reason)


def _hand_on(bind: Connection, claims: Sequence[Claimed]) -> None:
    # Out of time: the claims not sent yet are released to a new job.
    with transaction(bind) as session:
        release(session, [row_id for claimed in claims for row_id in claimed.ids])
    deliver.send(*(claimed.ids[0] for claimed in claims))


def _busy(rt: Runtime, chat_ids: Sequence[int]) -> list[float]:
    # Chats whose window is full for longer than is worth sleeping: wait on the
    # queue, before claiming and rendering anything.
    return [wait if wait > MAX_INLINE_WAIT else 0.0 for wait in rt.limiter.peek_many(chat_ids)]


def _render(rt: Runtime, session: Session, claims: Sequence[Claimed]) -> list[Push | None]:
    # The message of each claim (None: nothing to send); rows that cannot be
    # rendered fail (visibly), rows that do not fit are released for the next
    # message. All at once; should that fail, claim by claim, so a row that
    # cannot be rendered fails alone.
    if not claims:
        return []
    facts = _facts(rt, session)
    try:
        with session.begin_nested():
            pushes: list[Push | None] = list(
                render_many(session, [(c.rows, c.recipient) for c in claims], facts)
            )
    except Exception as exc:  # noqa: BLE001 - retried one by one below
        if len(claims) == 1:
            pushes = [None]
            _render_failed(session, claims[0], exc)
        else:
            pushes = []
            for claimed in claims:
                try:
                    with session.begin_nested():
                        pushes.append(render(session, claimed.rows, claimed.recipient, facts))
                except Exception as exc:  # noqa: BLE001 - a row we cannot render must show
                    pushes.append(None)
                    _render_failed(session, claimed, exc)
    for push in pushes:
        if push is not None:
            for notification_id, reason in push.broken:
                mark_failed(session, [notification_id], reason=reason)
            release(session, push.left_out)
    return pushes


def _render_failed(session: Session, claimed: Claimed, exc: Exception) -> None:
    # Failed, not retried: a row that cannot be rendered would loop.
    log.error("notification %d: rendering failed", claimed.ids[0], exc_info=exc)
    mark_failed(session, claimed.ids, reason=f"rendering failed: {exc!r}")


def _send_claimed(rt: Runtime, bind: Connection, claimed: Claimed, push: Push) -> None:
    recipient, own = claimed.recipient, claimed.rows[0]
    assert own.id is not None and recipient.chat_id is not None
    carried = list(push.included)
    # The slot is taken right before the call, with the request encoded, so
    # nothing slow stands between the limiter's count and Telegram's.
    text = None
    if push.text is not None and own.message_id is None:
        text = rt.telegram.message(recipient.chat_id, push.text, push.reply_markup)
    wait = rt.limiter.acquire(recipient.chat_id) if push.text is not None else 0.0
    if wait > 0:
        _defer(bind, carried, own.id, seconds=wait)
        return
    try:
        message_id = _send(rt, bind, recipient, own, push, text)
    except RetryAfter as exc:
        log.info("notification %d: 429, retry after %d s", own.id, exc.seconds)
        _defer(bind, carried, own.id, seconds=exc.seconds)
        return
    except Transient as exc:
        _retry(bind, carried, own.id, exc.description)
        return
    except Forbidden as exc:
        _unreachable(bind, recipient, carried, exc.description)
        return
    except BadRequest as exc:
        log.warning("notification %d: %s", own.id, exc.description)
        with transaction(bind) as session:
            mark_failed(session, carried, reason=exc.description)
        return
    with transaction(bind) as session:
        mark_sent(session, carried, message_id=message_id, now=clock.now())
        if push.card is not None and message_id is not None:
            number, version = push.card
            remember_cards(
                session,
                [
                    SentCard(
                        chat_id=recipient.chat_id,
                        message_id=message_id,
                        item_number=number,
                        member_id=recipient.member_id,
                        version=version,
                    )
                ],
            )


def _send(
    rt: Runtime,
    bind: Connection,
    recipient: Recipient,
    own: Notification,
    push: Push,
    text: Request | None,
) -> int | None:
    # The text (`text`, prepared; None when a retry finds it sent), then the own
    # row's files, noting progress. The caller took the limiter's slot for the
    # first call.
    assert recipient.chat_id is not None and own.id is not None
    chat_id = recipient.chat_id
    message_id = own.message_id
    files = attachment_ids(own)
    slot = push.text is not None
    if text is not None:
        message_id = rt.telegram.sent_id(rt.telegram.send(text))
        slot = False
        if files:
            with transaction(bind) as session:
                note_progress(session, own.id, message_id=message_id, files=0)
    for index in range(files_sent(own), len(files)):
        with Session(bind) as session:
            attachment = session.get(Attachment, files[index])
        if attachment is None:
            raise BadRequest(f"attachment {files[index]} does not exist")
        if not slot:
            wait = rt.limiter.acquire(chat_id)
            if wait > 0:
                raise RetryAfter("the shared limiter is full", max(1, round(wait)))
        slot = False
        name, content, mime = attachment.file_name, attachment.content, attachment.mime_type
        if mime == "image/png":
            sent = rt.telegram.send_photo(chat_id, name, content, mime)
        else:
            sent = rt.telegram.send_document(chat_id, name, content, mime)
        message_id = message_id or sent
        with transaction(bind) as session:
            note_progress(session, own.id, message_id=message_id, files=index + 1)
    return message_id


def _defer(bind: Connection, ids: Sequence[int], own_id: int, *, seconds: float) -> None:
    # Not a failure: the rows wait (Telegram's retry_after, or the shared limiter).
    now = clock.now()
    until = now + timedelta(seconds=seconds)
    with transaction(bind) as session:
        defer(session, ids, until=until, now=now)
    _enqueue_at(own_id, until)


def retry_delay(attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: RETRY_MIN doubling, capped, with jitter."""
    base: float = min(RETRY_MAX, RETRY_MIN * 2 ** max(0, attempts - 1))
    return base * (1 + random.uniform(0, RETRY_JITTER))


def _retry(bind: Connection, ids: Sequence[int], own_id: int, error: str) -> None:
    now = clock.now()
    with transaction(bind) as session:
        attempts = max(
            (row.attempts for row in _load(session, ids)),
            default=0,
        )
        retry_at = now + timedelta(seconds=retry_delay(attempts + 1))
        waiting = record_attempt(
            session, ids, error=error, now=now, retry_at=retry_at, max_attempts=MAX_ATTEMPTS
        )
    if own_id in waiting:
        log.warning("notification %d: %s; retrying at %s", own_id, error, retry_at.isoformat())
        _enqueue_at(own_id, retry_at)
    elif waiting:
        _enqueue_at(waiting[0], retry_at)
    else:
        log.warning("notification %d: %s; gave up", own_id, error)


def _load(session: Session, ids: Iterable[int]) -> list[Notification]:
    return list(session.exec(select(Notification).where(col(Notification.id).in_(list(ids)))))


def _unreachable(
    bind: Connection, recipient: Recipient, ids: Sequence[int], description: str
) -> None:
    # 403: the rows fail; the member is marked unreachable and every admin is told, once.
    now = clock.now()
    with transaction(bind) as session:
        watch = OutboxWatch(session)
        mark_failed(session, ids, reason=f"unreachable: {description}")
        if recipient.member_id is not None:
            mark_unreachable(session, recipient.member_id, now=now)
            occurrence = f"member-{recipient.member_id}"
            text = {
                lang: t(lang, "push_unreachable_member", name=recipient.name, code=recipient.code)
                for lang in LANGS
            }
        else:
            occurrence = f"chat-{recipient.chat_id}"
            text = {
                lang: t(lang, "push_unreachable_chat", chat=recipient.chat_id) for lang in LANGS
            }
        for admin in admins(session):
            if admin.id is None or admin.id == recipient.member_id:
                continue
            notify(
                session,
                stage=UNREACHABLE,
                recipient_id=admin.id,
                occurrence=occurrence,
                data={"text": text, "member": recipient.member_id, "chat": recipient.chat_id},
            )
        changes = watch.seal(session)
    log.info("%s is unreachable (%s); admins told", recipient.label, description)
    enqueue_changes(changes)


# -- refresh_cards ---------------------------------------------------------------------------


def refresh_now(rt: Runtime, item_number: int) -> None:
    """The body of `refresh_cards`, for the actor and for tests."""
    with rt.engine.connect() as connection:
        _refresh(rt, connection, item_number)


def _refresh(rt: Runtime, bind: Connection, item_number: int) -> None:
    with transaction(bind) as session:
        item = session.get(Item, item_number)
        if item is None:
            return
        stale = list(
            session.exec(
                select(Card).where(Card.item_number == item_number, Card.version < item.version)
            ).all()
        )
        version = item.version
    for card in stale:
        with transaction(bind) as session:
            item = session.get(Item, item_number)
            assert item is not None
            member = session.get(Member, card.member_id) if card.member_id else None
            lang = (member.language if member else None) or rt.settings.LANGUAGE
            rendered = card_for(session, item, card.member_id, lang, _facts(rt, session))
        wait = rt.limiter.acquire(card.chat_id)
        if wait > 0:
            refresh_cards.send_with_options(args=(item_number,), delay=int(wait * 1000) + 1)
            return
        try:
            rt.telegram.edit_message_text(
                card.chat_id, card.message_id, rendered.text, rendered.reply_markup()
            )
        except RetryAfter as exc:
            refresh_cards.send_with_options(args=(item_number,), delay=exc.seconds * 1000)
            return
        except (BadRequest, Forbidden) as exc:
            if "not modified" not in exc.description:
                # Deleted, too old to edit, or the chat is gone: forget the card.
                _forget_card(bind, card)
                continue
        except Transient:
            raise  # the actor's retries
        _card_version(bind, card, version)


def _forget_card(bind: Connection, card: Card) -> None:
    with transaction(bind) as session:
        row = session.get(Card, (card.chat_id, card.message_id))
        if row is not None:
            session.delete(row)


def _card_version(bind: Connection, card: Card, version: int) -> None:
    with transaction(bind) as session:
        row = session.get(Card, (card.chat_id, card.message_id))
        if row is not None and row.version < version:
            row.version = version
            session.add(row)
