"""Spot checks (每月随机抽查, 不打招呼) and look-back checks (回头看), SPEC §5 and §7.

Monthly, `assign_spot_checks` samples units for a comprehensive inspection and
`assign_lookbacks` samples closed items for re-inspection; each writes
SpotCheck rows and tells only the inspection groups. Both take the month's
period and run in the caller's transaction.

Units are the ranked ones (models.rankings.UNIT_KINDS): branches and general
branches, the grassroots organisations a spot check visits. The sample:

- candidates are the units with fewer than `max_per_year`
  (MAX_INSPECTIONS_PER_YEAR) comprehensive SpotCheck rows in the period's
  calendar year, and that some inspection group covers (a group covers a
  unit when one of its scope orgs is the unit or above it). Units no group
  covers are left out before sampling and reported (`uncovered`), so the
  month's sample is filled with units someone can visit; units at the cap are
  reported as `capped`;
- the sample size is `SAMPLE_SHARE` of all units, at least `SAMPLE_MIN`,
  never more than the candidates;
- weighted toward poor performers: weights by the unit's grade in the previous
  month's ranking (`GRADE_WEIGHTS`: poor 3, average 2, good 1), sampled
  without replacement (Efraimidis–Spirakis keys);
- deterministic: the random generator is seeded from the period key unless a
  seed is given, candidates are taken in code order.

Each sampled unit (or item) goes to the least-loaded covering group — the one
with the fewest SpotCheck rows this period, then the lowest group code.

Unannounced (不打招呼): only the assigned group's members are told (stage
"spotcheck", one bundled message per member, period and kind), never the unit —
and a group member who belongs to the inspected unit (their org is the unit or
below it, e.g. a branch secretary who also sits in the group) is neither told
of nor shown that check.

Idempotent per month: if the period already has checks of that kind, nothing
is written and the existing checks are returned, so a re-run job assigns the
same sample and owes nothing new. Assignments take a lock first, so a second
run waits for the first and then finds its checks: PostgreSQL's advisory lock;
SQLite's BEGIN IMMEDIATE already serialises writers. (The table backs this up:
its unique constraint (kind, period, org, item) stops a second look-back, and a
partial unique index a second comprehensive row of a unit in a month, whose
item is NULL — NULLs being distinct in SQL. Should a writer ever get past the
lock, its transaction fails and the retried job finds the month assigned.)

Look-backs sample items closed `LOOKBACK_MIN_DAYS`–`LOOKBACK_MAX_DAYS` days
before the period's first day (local closing day), not looked back before and
not split into children (their children are the items looked back),
uniformly, `LOOKBACK_SHARE` of them and at least `LOOKBACK_MIN` when there is
any. `record_lookback` records a group member's finding. A failed look-back
reopens the item through `models.ledger.act(…, "reopen", reason=finding)`,
which counts the relapse (Item.relapses, and the reopen event the ranking
counts). Reopening is a leader's action (models.permissions); the decision
here: the group's finding reopens the item with a leader's right over exactly
that item's org, granted by the assignment — not a standing right of
inspectors — and the event names the finder (actor_id) and the check (data
`spot_check`, `period`). A passed look-back appends a "lookback" event to
the item's history and leaves the item closed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from math import ceil
from random import Random
from types import MappingProxyType
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import exists, text
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, func, select

from models import clock
from models.audit import append_event
from models.ledger import act, get_item
from models.limits import REASON_MAX
from models.outbox import notify
from models.permissions import ADMIN, LEADER, Actor, in_subtree
from models.rankings import (
    AVERAGE,
    GOOD,
    MONTHLY,
    POOR,
    Period,
    grades,
    local_midnight,
    parse_period,
    period_of,
    previous_period,
    ranking,
    units_in,
)
from models.states import Action, Refused
from models.tables import GroupMember, GroupScope, InspectionGroup, Item, Member, Org, SpotCheck
from models.texts import t

COMPREHENSIVE = "comprehensive"
LOOKBACK = "lookback"
#: The notification stage of both kinds (SPEC §5).
STAGE = "spotcheck"

#: Share of all units sampled for a comprehensive inspection each month.
SAMPLE_SHARE = Fraction(1, 5)
#: Units sampled each month at least (when any is a candidate).
SAMPLE_MIN = 1  # units
#: Sampling weight by the unit's grade in the previous month's ranking.
GRADE_WEIGHTS: Mapping[str, int] = MappingProxyType({POOR: 3, AVERAGE: 2, GOOD: 1})
#: Items closed this many days before the month's first day, or more, are looked back.
LOOKBACK_MIN_DAYS = 30  # days
#: … and at most this many.
LOOKBACK_MAX_DAYS = 90  # days
#: Share of the eligible closed items looked back each month.
LOOKBACK_SHARE = Fraction(1, 10)
#: Items looked back each month at least (when any is eligible).
LOOKBACK_MIN = 1  # items
#: PostgreSQL advisory lock held while a month is assigned (any fixed number).
ASSIGN_LOCK = 4_604_212

LANGS = ("zh", "en")

T = TypeVar("T")


class SpotCheckRefused(Refused):
    """A look-back result cannot be recorded; nothing was written."""

    FALLBACK = MappingProxyType(
        {
            "no_lookback": "No look-back of #{number} is assigned to your groups this month.",
            "lookback_recorded": "The look-back of #{number} is already recorded.",
            "own_unit": "You cannot inspect your own unit.",
            "finding_required": "Say what the look-back found.",
            "too_long": "The {field} is {length} characters; at most {max} are allowed.",
        }
    )


def month(key: str | None, today: date) -> Period:
    """The month a job assigns: `key` ("2026-03"), or the month of `today`."""
    return parse_period(key, MONTHLY) if key else period_of(MONTHLY, today)


def seed_for(kind: str, period: Period) -> int:
    """The default seed of a month's sample: stable across runs and processes."""
    digest = hashlib.sha256(f"closeout:{kind}:{period.key}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


# --- the pure part -----------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A unit that may be sampled this month."""

    org_id: int
    code: str
    name: str
    path: str
    grade: str
    #: The covering groups' ids, by group code.
    groups: tuple[int, ...]

    @property
    def weight(self) -> int:
        return GRADE_WEIGHTS[self.grade]


def sample_size(units: int, share: Fraction, least: int, available: int) -> int:
    """`share` of `units`, at least `least`, at most `available`."""
    return min(available, max(least, ceil(units * share))) if available else 0


def weighted_sample(
    population: Sequence[T], weights: Sequence[float], k: int, rng: Random
) -> list[T]:
    """`k` of `population` without replacement, each drawn with probability
    proportional to its weight among those left (Efraimidis–Spirakis: the
    largest u^(1/w)). Deterministic for a given `rng` state and order."""
    keyed = [
        (rng.random() ** (1.0 / weight), index)
        for index, weight in enumerate(weights)
        if weight > 0
    ]
    keyed.sort(reverse=True)
    return [population[index] for _, index in keyed[: max(k, 0)]]


def sample_units(candidates: Sequence[Candidate], k: int, seed: int) -> list[Candidate]:
    """`k` candidates weighted by grade, for `seed`, in code order."""
    ordered = sorted(candidates, key=lambda c: c.code)
    chosen = weighted_sample(ordered, [c.weight for c in ordered], k, Random(seed))
    return sorted(chosen, key=lambda c: c.code)


def least_loaded(groups: Sequence[int], loads: Mapping[int, int], codes: Mapping[int, str]) -> int:
    """The group with the fewest checks so far, then the lowest code."""
    return min(groups, key=lambda group: (loads.get(group, 0), codes[group]))


# --- the directory ------------------------------------------------------------------


@dataclass(frozen=True)
class Groups:
    """The inspection groups: code and name by id, and the org paths each covers."""

    codes: Mapping[int, str]
    names: Mapping[int, str]
    paths: Mapping[int, tuple[str, ...]]

    def covering(self, org_path: str) -> tuple[int, ...]:
        """The groups whose scope contains the org at `org_path`, by code."""
        ids = [
            group
            for group, paths in self.paths.items()
            if any(in_subtree(org_path, path) for path in paths)
        ]
        return tuple(sorted(ids, key=lambda group: self.codes[group]))


def load_groups(session: Session) -> Groups:
    groups = session.exec(select(InspectionGroup)).all()
    paths: dict[int, list[str]] = {}
    for group_id, path in session.exec(
        select(GroupScope.group_id, Org.path).join(Org, col(Org.id) == col(GroupScope.org_id))
    ).all():
        paths.setdefault(group_id, []).append(path)
    return Groups(
        codes={g.id: g.code for g in groups if g.id is not None},
        names={g.id: g.name for g in groups if g.id is not None},
        paths={group: tuple(sorted(p)) for group, p in paths.items()},
    )


def _lock(session: Session) -> None:
    # One assignment at a time (see the module's docstring).
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ASSIGN_LOCK})


def _existing(session: Session, kind: str, period: Period) -> list[SpotCheck]:
    return list(
        session.exec(
            select(SpotCheck)
            .where(SpotCheck.kind == kind, SpotCheck.period == period.key)
            .order_by(col(SpotCheck.id))
        ).all()
    )


def _loads(session: Session, period: Period) -> dict[int, int]:
    return dict(
        session.exec(  # type: ignore[arg-type]  # group_id NULL is left out below
            select(SpotCheck.group_id, func.count())
            .where(SpotCheck.period == period.key, col(SpotCheck.group_id).is_not(None))
            .group_by(col(SpotCheck.group_id))
        ).all()
    )


def inspections_in_year(session: Session, year: int) -> dict[int, int]:
    """org id → comprehensive spot checks assigned in the calendar year `year`."""
    return dict(
        session.exec(
            select(SpotCheck.org_id, func.count())
            .where(
                SpotCheck.kind == COMPREHENSIVE,
                col(SpotCheck.period).startswith(f"{year:04d}-"),
            )
            .group_by(col(SpotCheck.org_id))
        ).all()
    )


@dataclass(frozen=True)
class Assignment:
    """What a month's assignment of one kind came to."""

    kind: str
    period: Period
    checks: list[SpotCheck]
    #: False when the month was assigned before: nothing was written.
    new: bool
    #: Codes of the units (or of the looked-back items' orgs) no group covers.
    uncovered: list[str]
    #: Codes of the units already at the yearly cap.
    capped: list[str]
    #: Notifications owed.
    notified: int = 0


def spot_check_candidates(
    session: Session,
    period: Period,
    *,
    today: date,
    zone: ZoneInfo,
    max_per_year: int,
    groups: Groups | None = None,
) -> tuple[list[Candidate], list[str], list[str]]:
    """(candidates, uncovered unit codes, capped unit codes) for `period`'s sample.

    Grades come from the previous month's ranking of all units.
    """
    groups = groups or load_groups(session)
    graded = grades(ranking(session, previous_period(period), today=today, zone=zone))
    done = inspections_in_year(session, period.start.year)
    candidates, uncovered, capped = [], [], []
    for unit in units_in(session, None):
        assert unit.id is not None
        if done.get(unit.id, 0) >= max_per_year:
            capped.append(unit.code)
            continue
        covering = groups.covering(unit.path)
        if not covering:
            uncovered.append(unit.code)
            continue
        candidates.append(
            Candidate(
                org_id=unit.id,
                code=unit.code,
                name=unit.name,
                path=unit.path,
                grade=graded.get(unit.id, AVERAGE),
                groups=covering,
            )
        )
    return candidates, uncovered, capped


def assign_spot_checks(
    session: Session,
    period: Period,
    *,
    today: date,
    zone: ZoneInfo,
    max_per_year: int,
    seed: int | None = None,
) -> Assignment:
    """Sample the month's units, assign them to groups, tell the groups (see the module)."""
    _lock(session)
    existing = _existing(session, COMPREHENSIVE, period)
    if existing:
        return Assignment(COMPREHENSIVE, period, existing, False, [], [])
    groups = load_groups(session)
    candidates, uncovered, capped = spot_check_candidates(
        session, period, today=today, zone=zone, max_per_year=max_per_year, groups=groups
    )
    units = len(candidates) + len(uncovered) + len(capped)
    k = sample_size(units, SAMPLE_SHARE, SAMPLE_MIN, len(candidates))
    chosen = sample_units(candidates, k, seed_for(COMPREHENSIVE, period) if seed is None else seed)
    loads = _loads(session, period)
    checks = []
    now = clock.now()
    for unit in chosen:
        group = least_loaded(unit.groups, loads, groups.codes)
        loads[group] = loads.get(group, 0) + 1
        checks.append(
            SpotCheck(
                kind=COMPREHENSIVE,
                period=period.key,
                org_id=unit.org_id,
                group_id=group,
                assigned_at=now,
            )
        )
    session.add_all(checks)
    session.flush()
    notified = _tell_groups(session, COMPREHENSIVE, period, checks, groups, zone)
    return Assignment(COMPREHENSIVE, period, checks, True, uncovered, capped, notified)


def lookback_window(period: Period, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[from, to) instants: items closed on a local day `LOOKBACK_MAX_DAYS` to
    `LOOKBACK_MIN_DAYS` days before the period's first day."""
    first = period.start - timedelta(days=LOOKBACK_MAX_DAYS)
    last = period.start - timedelta(days=LOOKBACK_MIN_DAYS)
    return local_midnight(first, zone), local_midnight(last + timedelta(days=1), zone)


def assign_lookbacks(
    session: Session, period: Period, *, zone: ZoneInfo, seed: int | None = None
) -> Assignment:
    """Sample the month's closed items for a look-back, assign and tell the groups."""
    _lock(session)
    existing = _existing(session, LOOKBACK, period)
    if existing:
        return Assignment(LOOKBACK, period, existing, False, [], [])
    groups = load_groups(session)
    start, end = lookback_window(period, zone)
    child = aliased(Item)
    looked = aliased(SpotCheck)
    rows = session.exec(
        select(Item.number, Item.org_id, Org.code, Org.path)
        .join(Org, col(Org.id) == col(Item.org_id))
        .where(
            col(Item.status) == "closed",
            col(Item.closed_at) >= start,
            col(Item.closed_at) < end,
            ~exists().where(col(child.parent_number) == col(Item.number)),
            ~exists().where(
                col(looked.item_number) == col(Item.number), col(looked.kind) == LOOKBACK
            ),
        )
        .order_by(col(Item.number))
    ).all()
    eligible, uncovered = [], []
    for number, org_id, code, path in rows:
        covering = groups.covering(path)
        if covering:
            eligible.append((number, org_id, covering))
        elif code not in uncovered:
            uncovered.append(code)
    k = sample_size(len(eligible), LOOKBACK_SHARE, LOOKBACK_MIN, len(eligible))
    rng = Random(seed_for(LOOKBACK, period) if seed is None else seed)
    chosen = sorted(rng.sample(eligible, k))
    loads = _loads(session, period)
    checks = []
    now = clock.now()
    for number, org_id, covering in chosen:
        group = least_loaded(covering, loads, groups.codes)
        loads[group] = loads.get(group, 0) + 1
        checks.append(
            SpotCheck(
                kind=LOOKBACK,
                period=period.key,
                org_id=org_id,
                group_id=group,
                item_number=number,
                assigned_at=now,
            )
        )
    session.add_all(checks)
    session.flush()
    notified = _tell_groups(session, LOOKBACK, period, checks, groups, zone)
    return Assignment(LOOKBACK, period, checks, True, uncovered, [], notified)


# --- telling the groups ---------------------------------------------------------------


def _members_of(session: Session, group_ids: Iterable[int]) -> dict[int, list[tuple[int, str]]]:
    # group id → [(member id, member's org path)], by member id.
    members: dict[int, list[tuple[int, str]]] = {}
    for group_id, member_id, path in session.exec(
        select(GroupMember.group_id, Member.id, Org.path)
        .join(Member, col(Member.id) == col(GroupMember.member_id))
        .join(Org, col(Org.id) == col(Member.org_id))
        .where(col(GroupMember.group_id).in_(list(group_ids)))
        .order_by(col(Member.id))
    ).all():
        if member_id is not None:
            members.setdefault(group_id, []).append((member_id, path))
    return members


def _check_line(
    lang: str,
    check: SpotCheck,
    org: Org,
    group_name: str,
    item: Item | None,
    zone: ZoneInfo,
) -> str:
    if check.kind == LOOKBACK and item is not None:
        closed = item.closed_at.astimezone(zone).date().isoformat() if item.closed_at else "—"
        return t(
            lang,
            "lookback_item_line",
            number=item.number,
            title=item.title,
            org=org.name,
            closed=closed,
            group=group_name,
        )
    return t(lang, "spotcheck_unit_line", name=org.name, code=org.code, group=group_name)


def _tell_groups(
    session: Session,
    kind: str,
    period: Period,
    checks: Sequence[SpotCheck],
    groups: Groups,
    zone: ZoneInfo,
) -> int:
    # One bundled message per member, of their groups' checks — minus their own unit's.
    if not checks:
        return 0
    members = _members_of(session, {check.group_id for check in checks if check.group_id})
    orgs = {
        org.id: org
        for org in session.exec(select(Org).where(col(Org.id).in_({c.org_id for c in checks})))
    }
    items = {
        item.number: item
        for item in session.exec(
            select(Item).where(col(Item.number).in_({c.item_number for c in checks}))
        )
    }
    per_member: dict[int, list[SpotCheck]] = {}
    for check in checks:
        unit = orgs[check.org_id]
        for member_id, member_path in members.get(check.group_id or 0, []):
            if in_subtree(member_path, unit.path):
                continue  # 不打招呼: nobody hears of a check of their own unit
            per_member.setdefault(member_id, []).append(check)
    header = "spotcheck_push" if kind == COMPREHENSIVE else "lookback_push"
    owed = 0
    for member_id, mine in sorted(per_member.items()):
        text = {}
        for lang in LANGS:
            lines = [t(lang, header, period=period.key)]
            lines += [
                _check_line(
                    lang,
                    check,
                    orgs[check.org_id],
                    groups.names.get(check.group_id or 0, ""),
                    items.get(check.item_number or 0),
                    zone,
                )
                for check in mine
            ]
            if kind == LOOKBACK:
                lines.append(t(lang, "lookback_how"))
            text[lang] = "\n".join(lines)
        owed += notify(
            session,
            stage=STAGE,
            recipient_id=member_id,
            occurrence=f"{kind}:{period.key}",
            data={"text": text, "checks": [check.id for check in mine]},
        )
    return owed


# --- the inspectors' side ----------------------------------------------------------------


def _group_ids(session: Session, member_id: int) -> set[int]:
    return set(
        session.exec(select(GroupMember.group_id).where(GroupMember.member_id == member_id)).all()
    )


@dataclass(frozen=True)
class CheckView:
    """One assignment as an inspector sees it."""

    check: SpotCheck
    org: Org
    group_name: str
    item: Item | None


def assignments_for(session: Session, actor: Actor, period: Period) -> list[CheckView]:
    """The period's checks of the actor's groups (every group's for an admin),
    comprehensive first, without those of the actor's own unit."""
    statement = select(SpotCheck).where(SpotCheck.period == period.key)
    if ADMIN not in actor.roles:
        mine = _group_ids(session, actor.member_id)
        if not mine:
            return []
        statement = statement.where(col(SpotCheck.group_id).in_(mine))
    checks = session.exec(
        statement.order_by(col(SpotCheck.kind), col(SpotCheck.org_id), col(SpotCheck.item_number))
    ).all()
    orgs = {
        org.id: org
        for org in session.exec(select(Org).where(col(Org.id).in_({c.org_id for c in checks})))
    }
    names = {
        group.id: group.name
        for group in session.exec(
            select(InspectionGroup).where(col(InspectionGroup.id).in_({c.group_id for c in checks}))
        )
    }
    numbers = {c.item_number for c in checks if c.item_number is not None}
    items = {
        item.number: item
        for item in session.exec(select(Item).where(col(Item.number).in_(numbers)))
    }
    views = [
        CheckView(
            check=check,
            org=orgs[check.org_id],
            group_name=names.get(check.group_id, ""),
            item=items.get(check.item_number) if check.item_number is not None else None,
        )
        for check in checks
        if not in_subtree(actor.org_path, orgs[check.org_id].path)
    ]
    views.sort(key=lambda v: (v.check.kind != COMPREHENSIVE, v.org.code, v.check.item_number or 0))
    return views


def lookback_of(
    session: Session, actor: Actor, number: int, period: Period | None = None
) -> SpotCheck:
    """The look-back of item #number assigned to one of the actor's groups (any
    group's for an admin): in `period`, or else the latest one, an unrecorded
    one first (a check assigned last month may be recorded this month).
    SpotCheckRefused("no_lookback") when there is none."""
    statement = select(SpotCheck).where(SpotCheck.kind == LOOKBACK, SpotCheck.item_number == number)
    if period is not None:
        statement = statement.where(SpotCheck.period == period.key)
    if ADMIN not in actor.roles:
        statement = statement.where(
            col(SpotCheck.group_id).in_(_group_ids(session, actor.member_id))
        )
    check = session.exec(
        statement.order_by(col(SpotCheck.done_at).is_not(None), col(SpotCheck.period).desc())
    ).first()
    if check is None:
        raise SpotCheckRefused("no_lookback", {"number": number})
    return check


def record_lookback(
    session: Session, actor: Actor, spot_check_id: int, passed: bool, note: str | None
) -> SpotCheck:
    """Record a look-back's result (see the module's docstring for who may, and
    what a failure does). Raises SpotCheckRefused: `no_lookback` (no such
    look-back in the actor's groups), `own_unit`, `lookback_recorded`,
    `finding_required` (a failure needs the finding), `too_long`."""
    check = session.exec(
        select(SpotCheck).where(SpotCheck.id == spot_check_id).with_for_update()
    ).first()
    if check is None or check.kind != LOOKBACK or check.item_number is None:
        raise SpotCheckRefused("no_lookback", {"number": "?"})
    number = check.item_number
    if ADMIN not in actor.roles and check.group_id not in _group_ids(session, actor.member_id):
        raise SpotCheckRefused("no_lookback", {"number": number})
    unit = session.get(Org, check.org_id)
    assert unit is not None
    if in_subtree(actor.org_path, unit.path):
        raise SpotCheckRefused("own_unit", {"number": number})
    if check.done_at is not None:
        raise SpotCheckRefused("lookback_recorded", {"number": number})
    finding = (note or "").strip() or None
    if not passed and finding is None:
        raise SpotCheckRefused("finding_required", {"number": number})
    if finding is not None and len(finding) > REASON_MAX:
        raise SpotCheckRefused(
            "too_long", {"field": "note", "length": len(finding), "max": REASON_MAX}
        )
    check.done_at = clock.now()
    check.passed = passed
    check.note = finding
    session.add(check)
    item = get_item(session, number, lock=True)
    details = {"spot_check": check.id, "period": check.period, "passed": passed}
    if not passed and item.status == "closed":
        # The assignment grants the reopen, over this item's org only.
        finder = Actor(member_id=actor.member_id, roles=frozenset({LEADER}), org_path=unit.path)
        act(session, finder, number, Action.REOPEN, reason=finding, data=details)
    else:
        # Passed; or failed but reopened meanwhile by someone else, whose reopen
        # already counted the relapse: the look-back is recorded on the item only.
        append_event(
            session,
            action="lookback",
            item_number=number,
            actor_id=actor.member_id,
            from_status=item.status,
            to_status=item.status,
            reason=finding,
            data=details,
        )
    session.flush()
    return check


__all__ = [
    "COMPREHENSIVE",
    "GRADE_WEIGHTS",
    "LOOKBACK",
    "LOOKBACK_MAX_DAYS",
    "LOOKBACK_MIN",
    "LOOKBACK_MIN_DAYS",
    "LOOKBACK_SHARE",
    "SAMPLE_MIN",
    "SAMPLE_SHARE",
    "STAGE",
    "Assignment",
    "Candidate",
    "CheckView",
    "SpotCheckRefused",
    "assign_lookbacks",
    "assign_spot_checks",
    "assignments_for",
    "inspections_in_year",
    "lookback_of",
    "lookback_window",
    "month",
    "record_lookback",
    "sample_units",
    "seed_for",
    "spot_check_candidates",
    "weighted_sample",
]
