"""The good/average/poor ranking (好中差, SPEC §5) over plain outcomes, and its periods."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import date, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.rankings import (
    AVERAGE,
    GOOD,
    GRADES,
    OUTCOME_FIELDS,
    POOR,
    UnitOutcome,
    band_size,
    parse_period,
    period_of,
    previous_period,
    rank,
    score,
)


@st.composite
def units(draw: st.DrawFn, min_size: int = 0, max_size: int = 25) -> list[UnitOutcome]:
    """Units with distinct ids and codes and small, often equal, outcome counts."""
    count = draw(st.integers(min_size, max_size))
    outcomes = []
    for index in range(count):
        came_due = draw(st.integers(0, 6))
        outcomes.append(
            UnitOutcome(
                org_id=index + 1,
                code=f"B{draw(st.integers(0, 999)):03d}-{index}",
                name=f"支部{index}",
                came_due=came_due,
                on_time=draw(st.integers(0, came_due)),
                overdue=draw(st.integers(0, 4)),
                rejections=draw(st.integers(0, 4)),
                relapses=draw(st.integers(0, 2)),
            )
        )
    return outcomes


def _place(ranking: list, org_id: int) -> tuple[int, int]:
    entry = next(entry for entry in ranking if entry.unit.org_id == org_id)
    return entry.position, GRADES.index(entry.grade)


def test_a_ranking_reads_outcomes_only_never_activity() -> None:
    # SPEC §7: no ranking by online time, messages or check-ins.
    facts = {f.name for f in fields(UnitOutcome)} - {"org_id", "code", "name"}
    assert facts == OUTCOME_FIELDS == {"came_due", "on_time", "overdue", "rejections", "relapses"}


@given(units())
def test_the_ranking_is_a_permutation_of_the_units(outcomes: list[UnitOutcome]) -> None:
    ranking = rank(outcomes)
    assert sorted(entry.unit.org_id for entry in ranking) == sorted(u.org_id for u in outcomes)
    assert [entry.position for entry in ranking] == list(range(1, len(outcomes) + 1))
    assert all(entry.grade in GRADES for entry in ranking)


@given(units(), st.randoms())
def test_the_ranking_does_not_depend_on_the_order_units_come_in(
    outcomes: list[UnitOutcome], random: object
) -> None:
    shuffled = list(outcomes)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    assert rank(shuffled) == rank(outcomes)


@given(units(min_size=1), st.data())
def test_adding_an_overdue_item_never_improves_a_units_rank(
    outcomes: list[UnitOutcome], data: st.DataObject
) -> None:
    unit = data.draw(st.sampled_from(outcomes))
    more = data.draw(st.integers(1, 3))
    worse = [replace(u, overdue=u.overdue + more) if u is unit else u for u in outcomes]
    position, grade = _place(rank(outcomes), unit.org_id)
    new_position, new_grade = _place(rank(worse), unit.org_id)
    assert new_position >= position and new_grade >= grade


@given(units(min_size=1), st.data())
def test_an_overdue_item_that_came_due_in_the_period_never_improves_a_rank_either(
    outcomes: list[UnitOutcome], data: st.DataObject
) -> None:
    # Due in the period and not closed: one more came due, none more on time, one more overdue.
    unit = data.draw(st.sampled_from(outcomes))
    worse = [
        replace(u, came_due=u.came_due + 1, overdue=u.overdue + 1) if u is unit else u
        for u in outcomes
    ]
    position, grade = _place(rank(outcomes), unit.org_id)
    new_position, new_grade = _place(rank(worse), unit.org_id)
    assert new_position >= position and new_grade >= grade


@given(units(min_size=1), st.data())
def test_every_bad_outcome_lowers_the_score(
    outcomes: list[UnitOutcome], data: st.DataObject
) -> None:
    unit = data.draw(st.sampled_from(outcomes))
    for name in ("overdue", "rejections", "relapses"):
        assert score(replace(unit, **{name: getattr(unit, name) + 1})) < score(unit)
    assert score(replace(unit, came_due=unit.came_due + 1)) <= score(unit)


@given(units())
def test_equal_outcomes_get_equal_grades_and_bands_hold_at_most_their_size(
    outcomes: list[UnitOutcome],
) -> None:
    ranking = rank(outcomes)
    by_score: dict[Fraction, set[str]] = {}
    for entry in ranking:
        by_score.setdefault(entry.score, set()).add(entry.grade)
    assert all(len(grades) == 1 for grades in by_score.values())
    size = band_size(len(outcomes))
    assert sum(e.grade == GOOD for e in ranking) <= size
    assert sum(e.grade == POOR for e in ranking) <= size
    # Better scores never get a worse grade.
    for better, worse in zip(ranking, ranking[1:], strict=False):
        assert better.score >= worse.score
        assert GRADES.index(better.grade) <= GRADES.index(worse.grade)


def test_units_that_all_did_the_same_are_all_average() -> None:
    same = [UnitOutcome(org_id=i, code=f"B{i:02d}", name="") for i in range(1, 11)]
    assert {entry.grade for entry in rank(same)} == {AVERAGE}


def test_the_best_and_the_worst_tenth_are_good_and_poor() -> None:
    outcomes = [
        UnitOutcome(org_id=i, code=f"B{i:02d}", name="", came_due=1, on_time=1, overdue=i)
        for i in range(20)
    ]
    ranking = rank(outcomes)
    assert [e.unit.code for e in ranking if e.grade == GOOD] == ["B00", "B01"]
    assert [e.unit.code for e in ranking if e.grade == POOR] == ["B18", "B19"]
    assert band_size(20) == 2 and band_size(3) == 1 and band_size(1) == 0 and band_size(0) == 0


def test_ties_are_broken_by_outcomes_then_code() -> None:
    # Same score (100 - 20): two overdue, or one relapse.
    a = UnitOutcome(org_id=1, code="B02", name="", overdue=2)
    b = UnitOutcome(org_id=2, code="B01", name="", relapses=1)
    c = UnitOutcome(org_id=3, code="B00", name="", relapses=1)
    assert score(a) == score(b) == score(c)
    assert [e.unit.code for e in rank([a, b, c])] == ["B00", "B01", "B02"]
    d = UnitOutcome(org_id=4, code="A00", name="", overdue=2)
    e = UnitOutcome(org_id=5, code="A01", name="", overdue=1, came_due=2, on_time=1)
    # d: 100 - 20 = 80; e: 50 - 10 = 40.
    assert [x.unit.code for x in rank([e, d])] == ["A00", "A01"]


def test_closing_an_overdue_item_late_beats_leaving_it_open() -> None:
    open_late = UnitOutcome(org_id=1, code="B01", name="", came_due=2, on_time=1, overdue=1)
    closed_late = replace(open_late, overdue=0)
    assert score(closed_late) > score(open_late)


def test_nothing_due_counts_as_nothing_late() -> None:
    assert score(UnitOutcome(org_id=1, code="B01", name="")) == 100
    assert UnitOutcome(org_id=1, code="B01", name="").on_time_rate is None


@pytest.mark.parametrize(
    ("kind", "day", "key", "start", "end"),
    [
        ("daily", date(2026, 3, 2), "2026-03-02", date(2026, 3, 2), date(2026, 3, 2)),
        ("weekly", date(2026, 3, 4), "2026-W10", date(2026, 3, 2), date(2026, 3, 8)),
        ("weekly", date(2027, 1, 1), "2026-W53", date(2026, 12, 28), date(2027, 1, 3)),
        ("monthly", date(2026, 2, 14), "2026-02", date(2026, 2, 1), date(2026, 2, 28)),
        ("monthly", date(2026, 12, 31), "2026-12", date(2026, 12, 1), date(2026, 12, 31)),
        ("quarterly", date(2026, 3, 31), "2026-Q1", date(2026, 1, 1), date(2026, 3, 31)),
        ("quarterly", date(2026, 11, 1), "2026-Q4", date(2026, 10, 1), date(2026, 12, 31)),
    ],
)
def test_periods_have_the_keys_of_the_contract(
    kind: str, day: date, key: str, start: date, end: date
) -> None:
    period = period_of(kind, day)
    assert (period.key, period.start, period.end) == (key, start, end)
    assert parse_period(key) == period == parse_period(key, kind)


@given(
    st.sampled_from(["daily", "weekly", "monthly", "quarterly"]),
    st.dates(date(2000, 1, 2), date(2099, 12, 31)),
)
def test_periods_tile_the_calendar(kind: str, day: date) -> None:
    period = period_of(kind, day)
    assert period.start <= day <= period.end
    before = previous_period(period)
    assert before.end == period.start - timedelta(days=1)
    assert parse_period(period.key, kind) == period


def test_a_period_key_of_another_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="2026-W10"):
        parse_period("2026-03", "weekly")
    with pytest.raises(ValueError):
        parse_period("2026-13")
    with pytest.raises(ValueError):
        parse_period("2026-Q5")


def test_a_running_period_counts_only_the_days_that_are_over() -> None:
    march = parse_period("2026-03")
    assert march.cutoff(date(2026, 3, 2)) == date(2026, 3, 1)
    assert march.cutoff(date(2026, 3, 1)) is None
    assert march.cutoff(date(2026, 5, 1)) == date(2026, 3, 31)
