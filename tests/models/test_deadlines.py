"""Deadlines, overdue and the traffic light (SPEC §3)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.deadlines import (
    DEFAULT_DUE_WORKDAYS,
    GREEN,
    LIGHT_EMOJI,
    RED,
    YELLOW,
    Milestone,
    behind_roadmap,
    days_overdue,
    default_due_date,
    default_due_workdays,
    due_from_workdays,
    is_overdue,
    light,
    light_emoji,
)
from models.roles import FINISHED, SEVERITIES, STATUSES
from models.workdays import WorkCalendar

CAL = WorkCalendar()
WARN_DAYS = 3
UNFINISHED = [status for status in STATUSES if status not in FINISHED]
LAST_DAY_BEFORE_NATIONAL_DAY = date(2025, 9, 30)  # a Tuesday; 1-8 October are off
FIRST_DAY_AFTER_NATIONAL_DAY = date(2025, 10, 9)

dates = st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31))


# --- due dates ------------------------------------------------------------------


def test_default_deadline_is_shorter_for_graver_problems() -> None:
    assert set(DEFAULT_DUE_WORKDAYS) == set(SEVERITIES)
    assert [default_due_workdays(s) for s in ("general", "serious", "severe")] == [20, 10, 5]


def test_severe_problem_found_before_national_day_is_due_after_it() -> None:
    # Friday 26 Sep: 28 Sep (make-up Sunday), 29, 30 Sep, 9, 10 Oct.
    assert default_due_date(date(2025, 9, 26), "severe", CAL) == date(2025, 10, 10)


def test_unknown_severity_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown severity"):
        default_due_workdays("catastrophic")


def test_due_in_n_working_days_does_not_count_the_day_of_creation() -> None:
    assert due_from_workdays(date(2025, 10, 17), 1, CAL) == date(2025, 10, 20)
    assert due_from_workdays(date(2025, 10, 17), 0, CAL) == date(2025, 10, 17)


def test_due_date_crossing_into_an_unknown_year_does_not_raise() -> None:
    due = due_from_workdays(date(2026, 12, 10), DEFAULT_DUE_WORKDAYS["general"], CAL)
    assert due.year == 2027


# --- overdue --------------------------------------------------------------------


@pytest.mark.parametrize("status", UNFINISHED)
def test_the_day_of_the_due_date_is_not_overdue(status: str) -> None:
    due = LAST_DAY_BEFORE_NATIONAL_DAY
    assert not is_overdue(status, due, due)
    assert days_overdue(status, due, due, CAL) == 0


@pytest.mark.parametrize("status", UNFINISHED)
def test_the_day_after_the_due_date_is_overdue_even_on_a_holiday(status: str) -> None:
    assert is_overdue(status, LAST_DAY_BEFORE_NATIONAL_DAY, date(2025, 10, 1))


@pytest.mark.parametrize("status", sorted(FINISHED))
def test_closed_and_cancelled_items_are_never_overdue(status: str) -> None:
    assert not is_overdue(status, date(2025, 1, 1), date(2025, 10, 1))
    assert days_overdue(status, date(2025, 1, 1), date(2025, 10, 1), CAL) == 0


def test_an_item_without_a_due_date_is_never_overdue() -> None:
    assert not is_overdue("open", None, date(2025, 10, 1))
    assert days_overdue("open", None, date(2025, 10, 1), CAL) == 0


def test_holidays_do_not_count_as_days_overdue() -> None:
    due = LAST_DAY_BEFORE_NATIONAL_DAY
    assert days_overdue("open", due, date(2025, 10, 8), CAL) == 0
    assert days_overdue("open", due, FIRST_DAY_AFTER_NATIONAL_DAY, CAL) == 1
    # 9, 10, 11 (make-up Saturday) and 13 October
    assert days_overdue("open", due, date(2025, 10, 13), CAL) == 4


def test_a_weekend_after_a_friday_deadline_is_overdue_by_zero_working_days() -> None:
    friday = date(2025, 10, 17)
    assert is_overdue("in_progress", friday, friday + timedelta(days=1))
    assert days_overdue("in_progress", friday, friday + timedelta(days=1), CAL) == 0
    assert days_overdue("in_progress", friday, friday + timedelta(days=3), CAL) == 1


# --- the light ------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(FINISHED))
def test_closed_and_cancelled_items_have_no_light(status: str) -> None:
    assert light(status, date(2025, 1, 1), date(2025, 10, 9), CAL, WARN_DAYS, ()) is None


def test_an_overdue_item_is_red() -> None:
    assert light("submitted", date(2025, 9, 30), date(2025, 10, 1), CAL, WARN_DAYS, ()) == RED


def test_exactly_warn_days_working_days_left_is_yellow() -> None:
    today = date(2025, 10, 13)  # Monday
    assert light("open", date(2025, 10, 16), today, CAL, WARN_DAYS, ()) == YELLOW


def test_one_more_working_day_than_warn_days_left_is_green() -> None:
    today = date(2025, 10, 13)
    assert light("open", date(2025, 10, 17), today, CAL, WARN_DAYS, ()) == GREEN


def test_the_day_of_the_due_date_is_yellow_not_red() -> None:
    due = date(2025, 10, 17)
    assert light("in_progress", due, due, CAL, WARN_DAYS, ()) == YELLOW


def test_holidays_in_between_do_not_count_as_days_left() -> None:
    # Ten calendar days but only 9 and 10 October are working days: yellow.
    today = LAST_DAY_BEFORE_NATIONAL_DAY
    assert light("open", date(2025, 10, 10), today, CAL, WARN_DAYS, ()) == YELLOW
    # Four working days left from Sunday 28 Sep, a make-up workday: green.
    assert light("open", date(2025, 10, 10), date(2025, 9, 28), CAL, WARN_DAYS, ()) == GREEN


def test_an_item_behind_its_roadmap_is_yellow_with_time_left() -> None:
    today = date(2025, 10, 13)
    milestones = [Milestone(date(2025, 9, 20), True), Milestone(date(2025, 10, 10), False)]
    assert light("in_progress", date(2025, 12, 31), today, CAL, WARN_DAYS, milestones) == YELLOW


def test_milestones_done_or_not_yet_due_keep_the_light_green() -> None:
    today = date(2025, 10, 13)
    milestones = [
        (date(2025, 10, 10), True),
        (date(2025, 10, 13), False),
        (date(2025, 11, 1), False),
    ]
    assert light("in_progress", date(2025, 12, 31), today, CAL, WARN_DAYS, milestones) == GREEN


def test_overdue_beats_behind_the_roadmap() -> None:
    milestones = [(date(2025, 9, 1), False)]
    assert light("open", date(2025, 9, 30), date(2025, 10, 9), CAL, WARN_DAYS, milestones) == RED


def test_an_open_item_without_a_due_date_is_green_unless_behind_its_roadmap() -> None:
    today = date(2025, 10, 13)
    assert light("open", None, today, CAL, WARN_DAYS, ()) == GREEN
    assert light("open", None, today, CAL, WARN_DAYS, [(date(2025, 10, 1), False)]) == YELLOW


def test_a_milestone_due_today_is_not_behind() -> None:
    assert not behind_roadmap([(date(2025, 10, 13), False)], date(2025, 10, 13))
    assert behind_roadmap([(date(2025, 10, 13), False)], date(2025, 10, 14))


def test_each_light_has_its_emoji() -> None:
    assert LIGHT_EMOJI == {GREEN: "🟢", YELLOW: "🟡", RED: "🔴"}
    assert light_emoji(RED) == "🔴"
    assert light_emoji(None) == ""


@given(due=dates, today=dates, warn=st.integers(min_value=0, max_value=10))
def test_the_light_is_red_exactly_when_overdue_and_green_only_with_more_than_warn_days_left(
    due: date, today: date, warn: int
) -> None:
    value = light("open", due, today, CAL, warn, ())
    assert (value == RED) == is_overdue("open", due, today)
    if value == GREEN:
        assert CAL.workdays_between(today, due) > warn
    if value == YELLOW:
        assert 0 <= CAL.workdays_between(today, due) <= warn
