"""The follow-up ladder (SPEC §5): reminders before due, overdue, escalation."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.deadlines import RED, days_overdue, is_overdue, light
from models.ladder import (
    ESCALATE_1,
    ESCALATE_2,
    LEVEL_INQUIRY,
    LEVEL_TALK,
    OVERDUE,
    REMIND_1,
    REMIND_3,
    due_stages,
    escalate_stage,
    escalation_level,
    remind_stage,
)
from models.roles import FINISHED
from models.workdays import WorkCalendar

CAL = WorkCalendar()
# Due Tuesday 30 Sep 2025; 1-8 October are off. Working days after it:
# 9 (1), 10 (2), 11 Sat make-up (3), 13 (4), 14 (5), 15, 16, 17, 20 (9), 21 (10).
DUE = date(2025, 9, 30)

dates = st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31))


def test_stage_names_are_stable() -> None:
    assert (REMIND_3, REMIND_1, OVERDUE, ESCALATE_1, ESCALATE_2) == (
        "remind-3",
        "remind-1",
        "overdue",
        "escalate-1",
        "escalate-2",
    )
    assert remind_stage(3) == REMIND_3
    assert escalate_stage(2) == ESCALATE_2


# --- escalation -------------------------------------------------------------------


def test_reminder_talk_comes_after_five_working_days_overdue_not_counting_holidays() -> None:
    assert escalation_level("open", DUE, date(2025, 10, 13), CAL) == 0
    assert escalation_level("open", DUE, date(2025, 10, 14), CAL) == LEVEL_TALK


def test_formal_inquiry_comes_after_ten_working_days_overdue() -> None:
    assert escalation_level("in_progress", DUE, date(2025, 10, 20), CAL) == LEVEL_TALK
    assert escalation_level("in_progress", DUE, date(2025, 10, 21), CAL) == LEVEL_INQUIRY
    assert escalation_level("in_progress", DUE, date(2026, 6, 1), CAL) == LEVEL_INQUIRY


def test_a_weekend_does_not_raise_the_level() -> None:
    assert escalation_level("open", DUE, date(2025, 10, 18), CAL) == LEVEL_TALK
    assert escalation_level("open", DUE, date(2025, 10, 19), CAL) == LEVEL_TALK


@pytest.mark.parametrize("status", sorted(FINISHED))
def test_finished_items_are_never_escalated(status: str) -> None:
    assert escalation_level(status, DUE, date(2026, 1, 1), CAL) == 0
    assert due_stages(status, DUE, date(2026, 1, 1), CAL) == []


def test_items_without_a_due_date_are_not_on_the_ladder() -> None:
    assert escalation_level("open", None, date(2026, 1, 1), CAL) == 0
    assert due_stages("open", None, date(2026, 1, 1), CAL) == []


def test_configured_escalation_days_are_used() -> None:
    assert escalation_level("open", DUE, FIRST := date(2025, 10, 9), CAL, (1, 2)) == 1
    assert escalation_level("open", DUE, FIRST + timedelta(days=1), CAL, (1, 2)) == 2


@pytest.mark.parametrize("bad", [(10, 5), (0, 10), (5, 5)])
def test_a_misconfigured_escalation_ladder_is_refused(bad: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        escalation_level("open", DUE, date(2025, 10, 9), CAL, bad)
    with pytest.raises(ValueError):
        due_stages("open", DUE, date(2025, 10, 9), CAL, escalate_days=bad)


# --- stages -----------------------------------------------------------------------


def test_no_stage_while_more_than_three_working_days_are_left() -> None:
    # From Sunday 28 Sep (make-up workday) to Friday 10 Oct: 29, 30 Sep, 9, 10 Oct.
    assert due_stages("open", date(2025, 10, 10), date(2025, 9, 28), CAL) == []


def test_three_working_days_before_due_reminds_even_across_a_holiday() -> None:
    # 30 Sep, 9 and 10 Oct are left on Monday 29 Sep.
    assert due_stages("open", date(2025, 10, 10), date(2025, 9, 29), CAL) == [REMIND_3]
    assert due_stages("open", date(2025, 10, 10), date(2025, 10, 5), CAL) == [REMIND_3]


def test_one_working_day_before_due_gives_only_the_latest_reminder() -> None:
    # A sweep that missed the 3-day stage does not send both at once.
    assert due_stages("in_progress", date(2025, 10, 10), date(2025, 10, 9), CAL) == [REMIND_1]


def test_the_due_day_itself_is_still_the_last_reminder_not_overdue() -> None:
    due = date(2025, 10, 10)
    assert due_stages("submitted", due, due, CAL) == [REMIND_1]


def test_the_day_after_due_is_overdue() -> None:
    # Saturday 11 Oct 2025 was a make-up workday: one working day overdue.
    assert due_stages("open", date(2025, 10, 10), date(2025, 10, 11), CAL) == [OVERDUE]


def test_all_escalations_reached_are_returned_since_each_goes_to_different_people() -> None:
    assert due_stages("open", DUE, date(2025, 10, 14), CAL) == [OVERDUE, ESCALATE_1]
    assert due_stages("open", DUE, date(2025, 10, 21), CAL) == [OVERDUE, ESCALATE_1, ESCALATE_2]


def test_configured_reminder_days_name_their_stages() -> None:
    stages = due_stages("open", date(2025, 10, 17), date(2025, 10, 13), CAL, remind_days=(5, 2))
    assert stages == ["remind-5"]


def test_an_item_due_in_the_unknown_year_moves_along_the_ladder_without_raising() -> None:
    due = date(2027, 1, 8)  # a Friday, weekends-only
    assert due_stages("open", due, date(2027, 1, 5), CAL) == [REMIND_3]
    assert due_stages("open", due, date(2027, 1, 15), CAL) == [OVERDUE, ESCALATE_1]


@given(due=dates, today=dates)
def test_stages_agree_with_the_light_and_the_level(due: date, today: date) -> None:
    stages = due_stages("in_progress", due, today, CAL)
    reminders = [s for s in stages if s.startswith("remind-")]
    assert len(reminders) <= 1
    assert (OVERDUE in stages) == is_overdue("in_progress", due, today)
    assert (OVERDUE in stages) == (light("in_progress", due, today, CAL, 3, ()) == RED)
    level = escalation_level("in_progress", due, today, CAL)
    assert [s for s in stages if s.startswith("escalate-")] == [
        escalate_stage(k) for k in range(1, level + 1)
    ]
    assert level == sum(days_overdue("in_progress", due, today, CAL) >= t for t in (5, 10))


@given(due=dates, today=dates, later=st.integers(min_value=0, max_value=400))
def test_the_level_never_goes_down_as_time_passes(due: date, today: date, later: int) -> None:
    assert escalation_level("open", due, today, CAL) <= escalation_level(
        "open", due, today + timedelta(days=later), CAL
    )
