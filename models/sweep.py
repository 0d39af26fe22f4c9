"""The reminder and escalation sweep: SPEC §5's ladder, owed in the outbox.

Once or twice a day the sweep looks at every unfinished item with a due date
that a stage can apply to, asks `models.ladder.due_stages` which stages it has
reached today, and makes sure one notification per (item, stage, due date,
recipient) is owed:

- remind-N (N working days before due): the responsible person;
- overdue: the responsible person + the secretary of the item's org;
- escalate-1, reminder talk (谈话提醒): the secretary + the inspector who
  logged the item (if an inspector did; else the inspectors covering the org);
- escalate-2, formal inquiry (约谈函询): the leaders of the parent org (the
  nearest org above that has any), with a drafted inquiry notice (.docx)
  listing all the unit's overdue items (models.notices).

"The secretary of the item's org" falls back to its leaders when it has no
secretary, as `models.ledger.create_item` does for the responsible person (a
committee's head is often recorded as its leader).

The outbox key makes the sweep idempotent: a second run on the same day owes
nothing new, and an approved extension changes the due date and so the keys,
which restarts the ladder by itself. When an item's escalation level rises it
is stored on the item (version bumped) and an "escalate" event is appended, in
the same transaction as the notifications: per batch, one UPDATE … RETURNING
per level and the events appended together (models.audit.append_events).

Scale: a city ledger holds about a million items, most of them closed. The
candidates are chosen in SQL (status open/in_progress/submitted and due no
later than the last day a reminder can apply), then handled in batches of
`SWEEP_BATCH`: the directory facts a batch needs (org paths, secretaries,
leaders, inspectors) are loaded in a few queries per batch and kept for the
run, existing keys are looked up and new rows inserted in bulk. `sweep` can
hand each batch to the caller (`on_batch`) to commit, so a long sweep never
holds one huge transaction.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Table, any_, bindparam, cast, func, or_, tuple_, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session, col, select

from models import ladder
from models.audit import NewEvent, append_events
from models.notices import InquiryNotice, find_notices, overdue_lines, store_notices
from models.outbox import Owed, notification_key, notify_many, owed_keys
from models.roles import split_roles
from models.summaries import Facts
from models.tables import GroupMember, GroupScope, Item, Member, Org

log = logging.getLogger(__name__)

#: Items handled (and, with `on_batch`, committed) together.
SWEEP_BATCH = 2000
#: Statuses in which an item is still chased: not closed, not cancelled.
ACTIVE_STATUSES = ("open", "in_progress", "submitted")
#: The event action written when an item's escalation level rises.
ESCALATE_ACTION = "escalate"

SECRETARY, LEADER, INSPECTOR = "secretary", "leader", "inspector"


@dataclass
class SweepReport:
    """What a sweep did, or (dry run) would do.

    - `candidates`: items looked at;
    - `stages`: per stage, the items that have reached it today;
    - `owed`: per stage, the notifications newly owed (would be, in a dry run);
    - `escalated`: (item number, new level) for every item whose level rose;
    - `notices`: unit codes that got an inquiry notice today (would get);
    - `notification_ids`, `attachment_ids`: the rows written (empty in a dry run).
    """

    today: date
    dry_run: bool
    candidates: int = 0
    stages: Counter[str] = field(default_factory=Counter)
    owed: Counter[str] = field(default_factory=Counter)
    escalated: list[tuple[int, int]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    notification_ids: list[int] = field(default_factory=list)
    attachment_ids: list[int] = field(default_factory=list)

    @property
    def total_owed(self) -> int:
        return sum(self.owed.values())

    def add(self, other: SweepReport) -> None:
        """Fold a batch's report into this one."""
        self.candidates += other.candidates
        self.stages.update(other.stages)
        self.owed.update(other.owed)
        self.escalated.extend(other.escalated)
        self.notices = list(dict.fromkeys([*self.notices, *other.notices]))
        self.notification_ids.extend(other.notification_ids)
        self.attachment_ids = list(dict.fromkeys([*self.attachment_ids, *other.attachment_ids]))

    def as_dict(self) -> dict[str, Any]:
        return {
            "today": self.today.isoformat(),
            "dry_run": self.dry_run,
            "candidates": self.candidates,
            "stages": dict(sorted(self.stages.items(), key=lambda kv: _stage_order(kv[0]))),
            "owed": dict(sorted(self.owed.items(), key=lambda kv: _stage_order(kv[0]))),
            "escalated": len(self.escalated),
            "notices": list(self.notices),
        }


def _stage_order(stage: str) -> tuple[int, int]:
    # remind-3, remind-1, overdue, escalate-1, escalate-2: the ladder's order.
    if stage.startswith(ladder.REMIND_STAGE_PREFIX):
        return (0, -int(stage.removeprefix(ladder.REMIND_STAGE_PREFIX)))
    if stage == ladder.OVERDUE:
        return (1, 0)
    if stage.startswith(ladder.ESCALATE_STAGE_PREFIX):
        return (2, int(stage.removeprefix(ladder.ESCALATE_STAGE_PREFIX)))
    return (3, 0)


# --- pure parts --------------------------------------------------------------


def latest_due_date(today: date, facts: Facts, remind_days: Sequence[int]) -> date:
    """The latest due date any stage can apply to today.

    A reminder for N is reached while at most N working days are left, i.e.
    for due dates up to the day before the (N+1)-th working day after today;
    overdue and escalation stages need a due date before today.
    """
    if not remind_days:
        return today - timedelta(days=1)
    return facts.calendar.add_workdays(today, max(remind_days) + 1) - timedelta(days=1)


def level_of(stages: Iterable[str]) -> int:
    """The escalation level the stages reach (`models.ladder.escalation_level`, from its stages)."""
    return sum(1 for stage in stages if stage.startswith(ladder.ESCALATE_STAGE_PREFIX))


@dataclass(frozen=True)
class Recipients:
    """Who is told of one item, by role; each list in member-id order."""

    responsible: int | None
    secretaries: Sequence[int]
    logged_by_inspector: int | None
    inspectors: Sequence[int]
    leaders_above: Sequence[int]


def recipients_for(stage: str, people: Recipients) -> list[int]:
    """The members told of `stage`, per SPEC §5's table, each once, in a stable order."""
    if stage.startswith(ladder.REMIND_STAGE_PREFIX):
        chosen: list[int | None] = [people.responsible]
    elif stage == ladder.OVERDUE:
        chosen = [people.responsible, *people.secretaries]
    elif stage == ladder.ESCALATE_1:
        inspectors = (
            [people.logged_by_inspector]
            if people.logged_by_inspector is not None
            else list(people.inspectors)
        )
        chosen = [*people.secretaries, *inspectors]
    elif stage.startswith(ladder.ESCALATE_STAGE_PREFIX):
        chosen = list(people.leaders_above)
    else:
        raise ValueError(f"the sweep owes no stage {stage!r}")
    return [member for member in dict.fromkeys(chosen) if member is not None]


def _ancestor_paths(path: str) -> list[str]:
    """'/1/5/23/' → ['/1/', '/1/5/', '/1/5/23/'] (as models.people)."""
    ids = [part for part in path.split("/") if part]
    return ["/" + "/".join(ids[: end + 1]) + "/" for end in range(len(ids))]


def _path_ids(path: str) -> list[int]:
    return [int(part) for part in path.split("/") if part]


# --- the directory, loaded in bulk -------------------------------------------


@dataclass(frozen=True)
class _OrgFacts:
    id: int
    code: str
    name: str
    path: str


class _Directory:
    """The directory facts a sweep needs, loaded per batch for the orgs not seen
    yet and kept for the run. Mirrors models.people (secretaries_of, leaders_of,
    leaders_above, inspectors_covering) with a fixed number of queries."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.orgs: dict[int, _OrgFacts] = {}
        self.secretaries: dict[int, list[int]] = {}
        self.leaders: dict[int, list[int]] = {}
        self._inspectors_by_scope: dict[str, list[int]] | None = None
        # Per org path, once the batch's heads are loaded (they never change within a run).
        self._covering: dict[str, list[int]] = {}
        self._above: dict[str, tuple[list[int], _OrgFacts | None]] = {}
        self.member_roles: dict[int, frozenset[str]] = {}

    def load(self, org_ids: Iterable[int], member_ids: Iterable[int | None]) -> None:
        """Load what the orgs and members of a batch need and the run has not seen yet."""
        batch_orgs = set(org_ids)
        wanted: set[int] = set()
        for org_id, code, name, path in self._orgs(batch_orgs - set(self.orgs)):
            self._remember(org_id, code, name, path)
        for org_id in batch_orgs:
            if org_id in self.orgs:
                # Leaders above need every ancestor's name and heads.
                wanted.update(_path_ids(self.orgs[org_id].path))
        for org_id, code, name, path in self._orgs(wanted - set(self.orgs)):
            self._remember(org_id, code, name, path)
        self._load_heads(wanted - set(self.leaders))
        self._load_members({m for m in member_ids if m is not None} - set(self.member_roles))

    def _orgs(self, ids: set[int]) -> list[tuple[int, str, str, str]]:
        if not ids:
            return []
        return [
            (org_id, code, name, path)
            for org_id, code, name, path in self.session.exec(
                select(Org.id, Org.code, Org.name, Org.path).where(
                    _one_of(self.session, col(Org.id), sorted(ids))
                )
            )
            if org_id is not None
        ]

    def _remember(self, org_id: int, code: str, name: str, path: str) -> None:
        self.orgs[org_id] = _OrgFacts(org_id, code, name, path)

    def _load_heads(self, ids: set[int]) -> None:
        if not ids:
            return
        for org_id in ids:
            self.secretaries.setdefault(org_id, [])
            self.leaders.setdefault(org_id, [])
        rows = self.session.exec(
            select(Member.id, Member.org_id, Member.roles)
            .where(
                _one_of(self.session, col(Member.org_id), sorted(ids)),
                or_(col(Member.roles).contains(SECRETARY), col(Member.roles).contains(LEADER)),
            )
            .order_by(col(Member.id))
        )
        for member_id, org_id, roles in rows:
            assert member_id is not None
            held = split_roles(roles)
            self.member_roles[member_id] = held
            if SECRETARY in held:
                self.secretaries[org_id].append(member_id)
            if LEADER in held:
                self.leaders[org_id].append(member_id)

    def _load_members(self, ids: set[int]) -> None:
        if not ids:
            return
        for member_id, roles in self.session.exec(
            select(Member.id, Member.roles).where(
                _one_of(self.session, col(Member.id), sorted(ids))
            )
        ):
            assert member_id is not None
            self.member_roles[member_id] = split_roles(roles)

    def _inspectors(self) -> dict[str, list[int]]:
        # Inspection groups are few (tens to hundreds): load them all once.
        if self._inspectors_by_scope is None:
            by_scope: dict[str, set[int]] = {}
            rows = self.session.exec(
                select(Org.path, Member.id, Member.roles)
                .join(GroupScope, col(GroupScope.org_id) == Org.id)
                .join(GroupMember, col(GroupMember.group_id) == GroupScope.group_id)
                .join(Member, col(Member.id) == GroupMember.member_id)
            )
            for path, member_id, roles in rows:
                if INSPECTOR in split_roles(roles) and member_id is not None:
                    by_scope.setdefault(path, set()).add(member_id)
            self._inspectors_by_scope = {path: sorted(ids) for path, ids in by_scope.items()}
        return self._inspectors_by_scope

    # The lookups below mirror models.people.

    def unit_heads(self, org_id: int) -> list[int]:
        """The org's secretaries, else its leaders (as create_item chooses)."""
        return self.secretaries.get(org_id) or self.leaders.get(org_id, [])

    def inspectors_covering(self, path: str) -> list[int]:
        found = self._covering.get(path)
        if found is None:
            scopes = self._inspectors()
            members: set[int] = set()
            for ancestor in _ancestor_paths(path):
                members.update(scopes.get(ancestor, ()))
            found = self._covering[path] = sorted(members)
        return found

    def leaders_above(self, path: str) -> tuple[list[int], _OrgFacts | None]:
        """Leaders of the nearest org above that has any (the parent first), and that org."""
        found = self._above.get(path)
        if found is None:
            found = [], None
            ancestors = _path_ids(path)
            for org_id in reversed(ancestors[:-1] or ancestors):
                leaders = self.leaders.get(org_id, [])
                if leaders:
                    found = leaders, self.orgs.get(org_id)
                    break
            self._above[path] = found
        return found

    def is_inspector(self, member_id: int | None) -> bool:
        return member_id is not None and INSPECTOR in self.member_roles.get(member_id, frozenset())


# --- the sweep ---------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    number: int
    org_id: int
    responsible_id: int | None
    creator_id: int | None
    due_date: date
    status: str
    escalation_level: int


def candidate_numbers(
    session: Session, today: date, facts: Facts, remind_days: Sequence[int]
) -> list[int]:
    """Numbers of the items a stage can apply to today, in number order (one indexed query)."""
    latest = latest_due_date(today, facts, remind_days)
    return [
        number
        for number in session.exec(
            select(Item.number)
            .where(
                col(Item.status).in_(ACTIVE_STATUSES),
                col(Item.due_date).is_not(None),
                col(Item.due_date) <= latest,
            )
            .order_by(col(Item.number))
        )
        if number is not None
    ]


# The items as a Core table: the batch reads and the level updates skip the ORM.
_ITEMS: Table = Item.__table__  # type: ignore[attr-defined]  # set by SQLAlchemy, undeclared


def _one_of(session: Session, column: Any, values: Sequence[Any]) -> Any:
    # PostgreSQL: one array parameter (= ANY), compiled once for every batch;
    # SQLite: IN (…), a batch's worth of parameters is within its limit.
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def _numbered_and_due(session: Session, items: Sequence[_Candidate]) -> list[Any]:
    # The items still due when they were read. PostgreSQL: a join with two
    # array parameters (unnest); a (number, due_date) IN list of a batch's
    # pairs took ~35 ms to plan, and ~0.3 s in all, per statement. SQLite: IN (…)
    # over row values, within its parameter limit.
    table = _ITEMS.c
    if session.get_bind().dialect.name == "postgresql":
        read = (
            func.unnest(
                cast(bindparam(None, [i.number for i in items]), ARRAY(table.number.type)),
                cast(bindparam(None, [i.due_date for i in items]), ARRAY(table.due_date.type)),
            )
            .table_valued("number", "due_date")
            .render_derived("read")
        )
        return [table.number == read.c.number, table.due_date == read.c.due_date]
    return [tuple_(table.number, table.due_date).in_([(i.number, i.due_date) for i in items])]


def _load_batch(session: Session, numbers: Sequence[int], latest: date) -> list[_Candidate]:
    # Re-checked here: an item may have closed or moved since the numbers were read.
    item = _ITEMS.c
    rows = (
        session.connection()
        .execute(
            sa_select(
                item.number,
                item.org_id,
                item.responsible_id,
                item.creator_id,
                item.due_date,
                item.status,
                item.escalation_level,
            )
            .where(
                _one_of(session, item.number, numbers),
                item.status.in_(ACTIVE_STATUSES),
                item.due_date.is_not(None),
                item.due_date <= latest,
            )
            .order_by(item.number)
        )
        .all()
    )
    return [_Candidate(*row) for row in rows]


class _Sweep:
    """One sweep's state across batches: the directory and the day's notices."""

    def __init__(
        self,
        session: Session,
        facts: Facts,
        remind_days: Sequence[int],
        escalate_days: Sequence[int],
        dry_run: bool,
        language: str,
    ) -> None:
        self.session = session
        self.facts = facts
        self.remind_days = tuple(remind_days)
        self.escalate_days = tuple(escalate_days)
        self.dry_run = dry_run
        self.language = language
        self.directory = _Directory(session)
        # unit org id -> today's notice (None in a dry run), if drafted by this run
        self.notices: dict[int, int | None] = {}
        # (unit, leader) pairs whose row carries this run's notice already
        self.given: set[tuple[int, int | None]] = set()
        self.stages_by_due: dict[date, list[str]] = {}

    def batch(self, numbers: Sequence[int], latest: date) -> SweepReport:
        today = self.facts.today
        report = SweepReport(today=today, dry_run=self.dry_run)
        items = _load_batch(self.session, numbers, latest)
        report.candidates = len(items)
        reached: list[tuple[_Candidate, list[str]]] = []
        for item in items:
            # Candidates are all unfinished, so their stages depend on the due date only.
            stages = self.stages_by_due.get(item.due_date)
            if stages is None:
                stages = self.stages_by_due[item.due_date] = ladder.due_stages(
                    item.status,
                    item.due_date,
                    today,
                    self.facts.calendar,
                    self.remind_days,
                    self.escalate_days,
                )
            if stages:
                reached.append((item, stages))
                report.stages.update(stages)
        if not reached:
            return report
        self.directory.load(
            (item.org_id for item, _ in reached),
            (item.creator_id for item, stages in reached if ladder.ESCALATE_1 in stages),
        )

        # Keys are built once each; an Owed only for the few that are new.
        wanted: list[tuple[str, str, _Candidate, int]] = []
        for item, stages in reached:
            people = self._recipients(item, stages)
            for stage in stages:
                for member_id in recipients_for(stage, people):
                    key = notification_key(
                        stage=stage,
                        item_number=item.number,
                        due_date=item.due_date,
                        recipient_id=member_id,
                    )
                    wanted.append((key, stage, item, member_id))
        known = owed_keys(
            self.session,
            [item.number for item, _ in reached],
            {stage for _, stages in reached for stage in stages},
        )
        fresh = [w for w in wanted if w[0] not in known]
        if self.dry_run:
            report.owed.update(stage for _, stage, _, _ in fresh)
            self._draft_notices(self._units_of(fresh), report)
        else:
            new = self._attach_notices(fresh, report)
            ids = notify_many(self.session, new)
            report.notification_ids.extend(ids.values())
            report.owed.update(owed.stage for owed in new if owed.key in ids)

        levels = [(item, level_of(stages)) for item, stages in reached]
        risen = [(item, level) for item, level in levels if level > item.escalation_level]
        report.escalated.extend(self._escalate(risen))
        return report

    def _recipients(self, item: _Candidate, stages: Sequence[str]) -> Recipients:
        directory = self.directory
        org = directory.orgs[item.org_id]
        escalated = level_of(stages)
        return Recipients(
            responsible=item.responsible_id,
            secretaries=directory.unit_heads(item.org_id),
            logged_by_inspector=(
                item.creator_id if directory.is_inspector(item.creator_id) else None
            ),
            inspectors=(
                directory.inspectors_covering(org.path)
                if escalated >= ladder.LEVEL_TALK and not directory.is_inspector(item.creator_id)
                else ()
            ),
            leaders_above=(
                directory.leaders_above(org.path)[0] if escalated >= ladder.LEVEL_INQUIRY else ()
            ),
        )

    def _attach_notices(
        self, new: list[tuple[str, str, _Candidate, int]], report: SweepReport
    ) -> list[Owed]:
        """The new rows to owe; the unit's notice of the day on one level-2 row per leader.

        The notice lists all the unit's overdue items, so a leader needs it once:
        a row with a file is sent on its own (tasks.delivery), the others bundle.
        A notice drafted by an earlier sweep today went out with that sweep's rows.
        """
        self._draft_notices(self._units_of(new), report)
        owed = []
        for _, stage, item, member_id in new:
            data: dict[str, Any] = {}
            if stage == ladder.ESCALATE_2 and (item.org_id, member_id) not in self.given:
                self.given.add((item.org_id, member_id))
                attachment = self.notices.get(item.org_id)
                if attachment is not None:
                    data = {"attachments": [attachment]}
            owed.append(
                Owed(
                    stage=stage,
                    item_number=item.number,
                    due_date=item.due_date,
                    recipient_id=member_id,
                    data=data,
                )
            )
        return owed

    def _units_of(self, new: list[tuple[str, str, _Candidate, int]]) -> list[int]:
        # Units with a newly owed level-2 row and no notice looked up by this run yet.
        units = dict.fromkeys(
            item.org_id for _, stage, item, _ in new if stage == ladder.ESCALATE_2
        )
        return [unit for unit in units if unit not in self.notices]

    def _draft_notices(self, units: Sequence[int], report: SweepReport) -> None:
        # The day's notice of each unit: found (drafted by an earlier sweep
        # today), else drafted now (in a dry run: only counted).
        if not units:
            return
        orgs = self.directory.orgs
        today, lang = self.facts.today, self.language
        found = find_notices(self.session, (orgs[unit].code for unit in units), today, lang)
        missing = [unit for unit in units if orgs[unit].code not in found]
        for unit in units:
            self.notices[unit] = None  # found: sent with an earlier sweep's rows
        report.notices.extend(orgs[unit].code for unit in missing)
        if self.dry_run:
            return
        lines = overdue_lines(self.session, missing, today, self.facts.calendar)
        drafted = []
        for unit in missing:
            org = orgs[unit]
            _, issuer = self.directory.leaders_above(org.path)
            drafted.append(
                InquiryNotice(
                    unit_code=org.code,
                    unit_name=org.name,
                    issuer_name=issuer.name if issuer else "",
                    day=today,
                    items=lines[unit],
                )
            )
        attachments = store_notices(self.session, drafted, lang)
        self.notices.update(zip(missing, attachments, strict=True))
        report.attachment_ids.extend(attachments)

    def _escalate(self, risen: Sequence[tuple[_Candidate, int]]) -> list[tuple[int, int]]:
        """Store the risen levels (versions bumped) and append their events, in item
        order; returns (number, level) of those stored. An item that changed
        meanwhile (closed, moved, or another sweep got there first) is left out."""
        if self.dry_run or not risen:
            return [(item.number, level) for item, level in risen]
        by_level: dict[int, list[_Candidate]] = {}
        for item, level in risen:
            by_level.setdefault(level, []).append(item)
        table = _ITEMS.c
        status_of: dict[int, str] = {}
        # One UPDATE per level (escalate_days has a few): the guards are the
        # ones each item was chosen by, its due date included.
        for level, items in by_level.items():
            stored = self.session.connection().execute(
                update(_ITEMS)
                .where(
                    *_numbered_and_due(self.session, items),
                    table.escalation_level < level,
                    table.status.in_(ACTIVE_STATUSES),
                )
                .values(escalation_level=level, version=table.version + 1)
                .returning(table.number, table.status)
            )
            status_of.update((number, status) for number, status in stored)
        done = [(item, level) for item, level in risen if item.number in status_of]
        append_events(
            self.session,
            [
                NewEvent(
                    action=ESCALATE_ACTION,
                    item_number=item.number,
                    from_status=status_of[item.number],
                    to_status=status_of[item.number],
                    data={"level": level, "from": item.escalation_level, "due": item.due_date},
                )
                for item, level in done
            ],
        )
        return [(item.number, level) for item, level in done]


def sweep_batches(
    session: Session,
    facts: Facts,
    *,
    remind_days: Sequence[int] = ladder.DEFAULT_REMIND_DAYS,
    escalate_days: Sequence[int] = ladder.DEFAULT_ESCALATE_DAYS,
    dry_run: bool = False,
    language: str = "zh",
    batch_size: int = SWEEP_BATCH,
) -> Iterator[SweepReport]:
    """The sweep, one report per batch of candidates; see `sweep`.

    The caller may commit between batches (the generator keeps no cursor
    open across a yield: candidates are read as a list of numbers first).
    """
    ladder.escalation_level("open", None, facts.today, facts.calendar, escalate_days)  # validate
    latest = latest_due_date(facts.today, facts, remind_days)
    numbers = candidate_numbers(session, facts.today, facts, remind_days)
    state = _Sweep(session, facts, remind_days, escalate_days, dry_run, language)
    for start in range(0, len(numbers), batch_size):
        yield state.batch(numbers[start : start + batch_size], latest)


def sweep(
    session: Session,
    facts: Facts,
    *,
    remind_days: Sequence[int] = ladder.DEFAULT_REMIND_DAYS,
    escalate_days: Sequence[int] = ladder.DEFAULT_ESCALATE_DAYS,
    dry_run: bool = False,
    language: str = "zh",
    on_batch: Callable[[SweepReport], None] | None = None,
    batch_size: int = SWEEP_BATCH,
) -> SweepReport:
    """Owe every ladder notification reached today that is not owed yet.

    In the caller's transaction: notifications (INSERT … ON CONFLICT DO
    NOTHING by key), risen escalation levels with their "escalate" events,
    and one inquiry notice (an `Attachment`) per unit and day for level 2.
    `on_batch(report)` is called after each batch, e.g. to commit. With
    `dry_run` nothing is written and the report says what would be owed.

    `facts.today` is the local date (TIMEZONE); `language` is the notice's.
    Raises ValueError when `escalate_days` is not ascending and positive.
    Running it again owes nothing new.
    """
    total = SweepReport(today=facts.today, dry_run=dry_run)
    for part in sweep_batches(
        session,
        facts,
        remind_days=remind_days,
        escalate_days=escalate_days,
        dry_run=dry_run,
        language=language,
        batch_size=batch_size,
    ):
        total.add(part)
        if on_batch is not None:
            on_batch(part)
    log.info(
        "sweep %s%s: %d candidates, %d notifications owed, %d escalated, %d notices",
        facts.today,
        " (dry run)" if dry_run else "",
        total.candidates,
        total.total_owed,
        len(total.escalated),
        len(total.notices),
    )
    return total
