"""The good/average/poor ranking of units (好中差, SPEC §5 monthly review) and its periods.

Outcomes only (SPEC §7): a unit is judged by what happened to its items —
closed on time, overdue, rejected, relapsed — never by online time, messages,
check-ins or any other activity. `UnitOutcome` has no field that could carry
activity, and the score reads nothing else.

Units. A unit is an org of kind `branch` or `general_branch` (`UNIT_KINDS`):
the grassroots Party organisations (基层党组织) that rectify and are inspected;
committees lead and inspect, and are not ranked. A unit counts the items of
the org itself, not of its subtree: a general branch's branches are units of
their own, so nothing is counted twice. Every unit in scope is ranked, also
one with no items at all (it has nothing against it). Items that were split
(分解下发) into child items are left out: their outcome is their children's.
Cancelled items count nowhere.

The period's facts, for a unit, taken up to the period's `cutoff` — its last
day, or yesterday while the period is still running (a day counts once it is
over):

- `came_due`: items due on a day of the period up to the cutoff;
- `on_time`: of those, closed (已销号, still closed now) on or before the due
  date, the closing day taken in the deployment's time zone. The due date is
  the current one, so an approved extension (延期) moves it;
- `overdue`: items overdue at the end of the cutoff day — due before it,
  created by then and not closed by then (an item reopened later counts as
  not closed, the reopening is the relapse);
- `rejections`: reject events (退回整改, 整改不到位) in the period, from the
  history — `Item.rejections` is a lifetime total and is not used;
- `relapses`: reopen events (回潮, e.g. a failed look-back 回头看) in the period.

The score (higher is better), exact as a `Fraction`:

    ON_TIME_POINTS × on-time rate − OVERDUE_POINTS × overdue
    − REJECTION_POINTS × rejections − RELAPSE_POINTS × relapses

where the on-time rate is on_time / came_due, taken as 1 when nothing came
due (nothing was late). Every bad outcome strictly lowers the score, and
closing an overdue item late is better than leaving it open (it stops being
overdue; it was never on time either way).

The ranking orders units by score (best first), then fewer overdue, fewer
relapses, fewer rejections, then org code: a permutation of the units,
independent of input order. The top `band` are good and the bottom `band`
poor, the rest average; `band` is `GRADE_SHARE` of the units, at least
`GRADE_MIN`, and never more than half of them. Equal scores always get equal
grades: a unit inside a band whose score equals that of the first unit
outside it is average, so a band can be smaller than `band` (with every score
equal, every unit is average — nobody is called poor for a code's spelling).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from math import floor
from types import MappingProxyType
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, exists, false, literal, or_
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, func, select
from sqlmodel.sql.sqltypes import UTCDateTime

from models.tables import Event, Item, Org

#: Org kinds ranked (and sampled by spot checks, models.spotchecks).
UNIT_KINDS: tuple[str, ...] = ("general_branch", "branch")

#: Points for a perfect on-time closure rate.
ON_TIME_POINTS = 100  # points at rate 1
#: Points lost per item overdue at the end of the period.
OVERDUE_POINTS = 10  # points per item
#: Points lost per rejection (整改不到位) in the period.
REJECTION_POINTS = 5  # points per reject event
#: Points lost per relapse (回潮: a closed item reopened) in the period.
RELAPSE_POINTS = 20  # points per reopen event
#: Share of the units graded good, and the same share poor.
GRADE_SHARE = Fraction(1, 10)
#: Units graded good (and poor) at least, when there are two or more.
GRADE_MIN = 1  # units

GOOD = "good"
AVERAGE = "average"
POOR = "poor"
#: Grades from best to worst.
GRADES: tuple[str, ...] = (GOOD, AVERAGE, POOR)

# --- periods ---------------------------------------------------------------------

DAILY = "daily"
WEEKLY = "weekly"
MONTHLY = "monthly"
QUARTERLY = "quarterly"
PERIOD_KINDS: tuple[str, ...] = (DAILY, WEEKLY, MONTHLY, QUARTERLY)

_KEY_PATTERNS: Mapping[str, re.Pattern[str]] = MappingProxyType(
    {
        DAILY: re.compile(r"(\d{4})-(\d{2})-(\d{2})"),
        WEEKLY: re.compile(r"(\d{4})-W(\d{2})"),
        MONTHLY: re.compile(r"(\d{4})-(\d{2})"),
        QUARTERLY: re.compile(r"(\d{4})-Q([1-4])"),
    }
)


@dataclass(frozen=True)
class Period:
    """A calendar period in the deployment's zone: a day, an ISO week, a month, a quarter.

    `key` names it ("2026-03-02", "2026-W10", "2026-03", "2026-Q1"); `start`
    and `end` are its first and last day, both included.
    """

    kind: str
    key: str
    start: date
    end: date

    def days(self) -> Iterable[date]:
        day = self.start
        while day <= self.end:
            yield day
            day += timedelta(days=1)

    def cutoff(self, today: date) -> date | None:
        """The last day of the period that is over on `today`: its end, or
        yesterday while it runs; None when no day of it is over yet."""
        last = min(self.end, today - timedelta(days=1))
        return last if last >= self.start else None


def period_of(kind: str, day: date) -> Period:
    """The period of `kind` that contains `day`."""
    if kind == DAILY:
        return Period(kind, day.isoformat(), day, day)
    if kind == WEEKLY:
        year, week, weekday = day.isocalendar()
        start = day - timedelta(days=weekday - 1)
        return Period(kind, f"{year}-W{week:02d}", start, start + timedelta(days=6))
    if kind == MONTHLY:
        start = day.replace(day=1)
        following = (start + timedelta(days=32)).replace(day=1)
        return Period(kind, f"{day.year}-{day.month:02d}", start, following - timedelta(days=1))
    if kind == QUARTERLY:
        quarter = (day.month - 1) // 3 + 1
        start = date(day.year, 3 * quarter - 2, 1)
        following = (date(day.year, 3 * quarter, 1) + timedelta(days=32)).replace(day=1)
        return Period(kind, f"{day.year}-Q{quarter}", start, following - timedelta(days=1))
    raise ValueError(f"unknown period kind {kind!r} (known: {', '.join(PERIOD_KINDS)})")


def previous_period(period: Period) -> Period:
    """The period of the same kind just before `period`."""
    return period_of(period.kind, period.start - timedelta(days=1))


def parse_period(key: str, kind: str | None = None) -> Period:
    """The period a key names; `kind`, when given, must be the key's kind.

    Raises ValueError naming the expected shapes for anything else.
    """
    text = key.strip()
    kinds = (kind,) if kind is not None else PERIOD_KINDS
    for candidate in kinds:
        match = _KEY_PATTERNS[candidate].fullmatch(text)
        if match is None:
            continue
        numbers = [int(part) for part in match.groups()]
        try:
            if candidate == DAILY:
                day = date(*numbers)
            elif candidate == WEEKLY:
                day = date.fromisocalendar(numbers[0], numbers[1], 1)
            elif candidate == MONTHLY:
                day = date(numbers[0], numbers[1], 1)
            else:
                day = date(numbers[0], 3 * numbers[1] - 2, 1)
        except ValueError:
            break
        return period_of(candidate, day)
    shapes = {
        DAILY: "2026-03-02",
        WEEKLY: "2026-W10",
        MONTHLY: "2026-03",
        QUARTERLY: "2026-Q1",
    }
    wanted = " or ".join(shapes[k] for k in kinds)
    raise ValueError(f"{key!r} is not a period key like {wanted}")


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The instant `day` begins in `zone`, in UTC."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


# --- the pure part -------------------------------------------------------------------


@dataclass(frozen=True)
class UnitOutcome:
    """What happened to one unit's items in a period: outcomes, never activity."""

    org_id: int
    code: str
    name: str
    came_due: int = 0
    on_time: int = 0
    overdue: int = 0
    rejections: int = 0
    relapses: int = 0

    @property
    def on_time_rate(self) -> Fraction | None:
        """on_time / came_due, or None when nothing came due."""
        return Fraction(self.on_time, self.came_due) if self.came_due else None


#: The only facts a ranking reads (SPEC §7: no activity); a test holds it to this.
OUTCOME_FIELDS: frozenset[str] = frozenset(
    {"came_due", "on_time", "overdue", "rejections", "relapses"}
)


def score(outcome: UnitOutcome) -> Fraction:
    """The unit's score, higher is better (see the module's docstring)."""
    rate = outcome.on_time_rate
    return (
        ON_TIME_POINTS * (Fraction(1) if rate is None else rate)
        - OVERDUE_POINTS * outcome.overdue
        - REJECTION_POINTS * outcome.rejections
        - RELAPSE_POINTS * outcome.relapses
    )


def band_size(units: int) -> int:
    """How many units the good (and the poor) band holds at most, for `units` units."""
    wanted = max(GRADE_MIN, floor(units * GRADE_SHARE))
    return min(wanted, units // 2)


@dataclass(frozen=True)
class Ranked:
    """One unit's place: `position` 1 is the best."""

    position: int
    unit: UnitOutcome
    score: Fraction
    grade: str


def _order(unit: UnitOutcome) -> tuple[Fraction, int, int, int, str, int]:
    return (-score(unit), unit.overdue, unit.relapses, unit.rejections, unit.code, unit.org_id)


def rank(outcomes: Iterable[UnitOutcome], *, band: int | None = None) -> list[Ranked]:
    """Every unit, best first, with its grade (see the module's docstring).

    `band` overrides `band_size` (capped at half the units). The result is a
    permutation of `outcomes` and does not depend on their order.
    """
    ordered = sorted(outcomes, key=_order)
    count = len(ordered)
    size = band_size(count) if band is None else min(max(band, 0), count // 2)
    scores = [score(unit) for unit in ordered]
    ranked = []
    for index, unit in enumerate(ordered):
        grade = AVERAGE
        # A band holds the units strictly better (or worse) than the first unit outside it.
        if index < size and scores[index] > scores[size]:
            grade = GOOD
        elif index >= count - size and scores[index] < scores[count - size - 1]:
            grade = POOR
        ranked.append(Ranked(index + 1, unit, scores[index], grade))
    return ranked


def grades(ranking: Iterable[Ranked]) -> dict[int, str]:
    """org id → grade."""
    return {entry.unit.org_id: entry.grade for entry in ranking}


# --- gathering the outcomes ----------------------------------------------------------------


def _under(paths: tuple[str, ...] | None) -> ColumnElement[bool] | None:
    if paths is None:
        return None
    if not paths:
        return false()
    return or_(*(col(Org.path).startswith(path) for path in paths))


def units_in(session: Session, scope: tuple[str, ...] | None) -> list[Org]:
    """The units (orgs of `UNIT_KINDS`) under `scope` (org-path prefixes; None = all), by code."""
    statement = select(Org).where(col(Org.kind).in_(UNIT_KINDS)).order_by(col(Org.code))
    within = _under(scope)
    if within is not None:
        statement = statement.where(within)
    return list(session.exec(statement).all())


def _utc(moment: datetime) -> ColumnElement[datetime]:
    # A bound instant typed like the columns, so both backends compare it as one.
    return literal(moment, UTCDateTime())


def unit_outcomes(
    session: Session,
    period: Period,
    *,
    today: date,
    zone: ZoneInfo,
    scope: tuple[str, ...] | None = None,
) -> list[UnitOutcome]:
    """The outcomes of every unit under `scope` in `period`, by code.

    Four queries whatever the size: the units; items that came due and those
    closed on time, grouped by org (the on-time test is a CASE mapping each
    due day of the period to the instant it ends locally, so time zones stay
    out of SQL); items overdue at the cutoff, grouped by org; reject and reopen
    events of the period, grouped by org and action.
    """
    units = units_in(session, scope)
    cutoff = period.cutoff(today)
    if not units or cutoff is None:
        # Stored units have ids.
        return [UnitOutcome(org_id=u.id, code=u.code, name=u.name) for u in units]  # type: ignore[arg-type]
    ends = {day: local_midnight(day + timedelta(days=1), zone) for day in period.days()}
    start_at = local_midnight(period.start, zone)
    end_at = ends[cutoff]

    child = aliased(Item)
    not_split = ~exists().where(col(child.parent_number) == col(Item.number))
    conditions: list[ColumnElement[bool]] = [
        col(Org.kind).in_(UNIT_KINDS),
        col(Item.status) != "cancelled",
        not_split,
    ]
    within = _under(scope)
    if within is not None:
        conditions.append(within)

    deadline = case(
        *((col(Item.due_date) == day, _utc(ends[day])) for day in period.days() if day <= cutoff),
    )
    on_time = case(
        (and_(col(Item.status) == "closed", col(Item.closed_at) < deadline), 1),
        else_=0,
    )
    due_rows = session.exec(
        select(col(Item.org_id), func.count(), func.sum(on_time))
        .join(Org, col(Org.id) == col(Item.org_id))
        .where(
            *conditions,
            col(Item.due_date) >= period.start,
            col(Item.due_date) <= cutoff,
        )
        .group_by(col(Item.org_id))
    ).all()
    came_due = {org_id: (count, int(punctual or 0)) for org_id, count, punctual in due_rows}

    unfinished_then = or_(
        and_(col(Item.closed_at).is_(None), col(Item.status) != "closed"),
        col(Item.closed_at) >= _utc(end_at),
    )
    overdue = dict(
        session.exec(
            select(col(Item.org_id), func.count())
            .join(Org, col(Org.id) == col(Item.org_id))
            .where(
                *conditions,
                col(Item.due_date) < cutoff,
                col(Item.created_at) < _utc(end_at),
                unfinished_then,
            )
            .group_by(col(Item.org_id))
        ).all()
    )

    events: dict[tuple[int, str], int] = {}
    event_conditions: list[ColumnElement[bool]] = [col(Org.kind).in_(UNIT_KINDS)]
    if within is not None:
        event_conditions.append(within)
    for org_id, action, count in session.exec(
        select(col(Item.org_id), col(Event.action), func.count())
        .join(Item, col(Item.number) == col(Event.item_number))
        .join(Org, col(Org.id) == col(Item.org_id))
        .where(
            *event_conditions,
            col(Event.action).in_(("reject", "reopen")),
            col(Event.created_at) >= _utc(start_at),
            col(Event.created_at) < _utc(end_at),
        )
        .group_by(col(Item.org_id), col(Event.action))
    ).all():
        events[(org_id, action)] = count

    outcomes = []
    for unit in units:
        assert unit.id is not None
        due, punctual = came_due.get(unit.id, (0, 0))
        outcomes.append(
            UnitOutcome(
                org_id=unit.id,
                code=unit.code,
                name=unit.name,
                came_due=due,
                on_time=punctual,
                overdue=overdue.get(unit.id, 0),
                rejections=events.get((unit.id, "reject"), 0),
                relapses=events.get((unit.id, "reopen"), 0),
            )
        )
    return outcomes


def ranking(
    session: Session,
    period: Period,
    *,
    today: date,
    zone: ZoneInfo,
    scope: tuple[str, ...] | None = None,
) -> list[Ranked]:
    """`rank` over `unit_outcomes`: the period's ranking of the units under `scope`."""
    return rank(unit_outcomes(session, period, today=today, zone=zone, scope=scope))


__all__ = [
    "AVERAGE",
    "DAILY",
    "GOOD",
    "GRADES",
    "MONTHLY",
    "OUTCOME_FIELDS",
    "PERIOD_KINDS",
    "POOR",
    "QUARTERLY",
    "UNIT_KINDS",
    "WEEKLY",
    "Period",
    "Ranked",
    "UnitOutcome",
    "band_size",
    "grades",
    "local_midnight",
    "parse_period",
    "period_of",
    "previous_period",
    "rank",
    "ranking",
    "score",
    "unit_outcomes",
    "units_in",
]
