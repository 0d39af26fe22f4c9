"""The sweep's pure parts: who hears of each stage, how far ahead it looks, the report."""

from __future__ import annotations

from datetime import date

import pytest

from models.ladder import due_stages, escalation_level
from models.summaries import Facts
from models.sweep import Recipients, SweepReport, latest_due_date, level_of, recipients_for
from models.workdays import WorkCalendar

CAL = WorkCalendar()
PEOPLE = Recipients(
    responsible=6,
    secretaries=(5,),
    logged_by_inspector=3,
    inspectors=(3, 4),
    leaders_above=(2, 12),
)


def _facts(today: date) -> Facts:
    return Facts(today=today, calendar=CAL, warn_days=3)


def test_reminders_go_to_the_responsible_person_only() -> None:
    assert recipients_for("remind-3", PEOPLE) == [6]
    assert recipients_for("remind-1", PEOPLE) == [6]


def test_overdue_goes_to_the_responsible_person_and_the_secretary() -> None:
    assert recipients_for("overdue", PEOPLE) == [6, 5]


def test_a_secretary_responsible_for_her_own_item_is_told_once() -> None:
    people = Recipients(5, (5,), None, (), ())
    assert recipients_for("overdue", people) == [5]


def test_reminder_talk_goes_to_the_secretary_and_the_inspector_who_logged_it() -> None:
    assert recipients_for("escalate-1", PEOPLE) == [5, 3]


def test_reminder_talk_goes_to_the_covering_inspectors_when_no_inspector_logged_it() -> None:
    people = Recipients(6, (5,), None, (3, 4), ())
    assert recipients_for("escalate-1", people) == [5, 3, 4]


def test_formal_inquiry_goes_to_the_leaders_above() -> None:
    assert recipients_for("escalate-2", PEOPLE) == [2, 12]


def test_an_item_without_a_responsible_person_still_reaches_the_secretary() -> None:
    people = Recipients(None, (5,), None, (), ())
    assert recipients_for("remind-3", people) == []
    assert recipients_for("overdue", people) == [5]


def test_a_stage_the_sweep_does_not_own_is_a_bug() -> None:
    with pytest.raises(ValueError):
        recipients_for("assigned", PEOPLE)


def test_the_sweep_looks_ahead_to_the_last_day_a_reminder_applies() -> None:
    # Wednesday 2026-04-29: working days ahead are Thu 30 Apr, then 6, 7, 8 May
    # (1–5 May are the Labour Day holiday); "3 left" holds up to Thu 7 May.
    today = date(2026, 4, 29)
    latest = latest_due_date(today, _facts(today), (3, 1))
    assert latest == date(2026, 5, 7)
    assert due_stages("open", latest, today, CAL) == ["remind-3"]
    assert due_stages("open", date(2026, 5, 8), today, CAL) == []


def test_a_weekend_before_the_next_reminder_day_is_inside_the_window() -> None:
    # Friday 2026-03-06: Mon 9, Tue 10, Wed 11 are 3 working days ahead; Thu 12 is the 4th.
    today = date(2026, 3, 6)
    assert latest_due_date(today, _facts(today), (1, 3)) == date(2026, 3, 11)
    # With only "1 day left", a due date on Monday is reached on Friday (the weekend is no work).
    assert latest_due_date(today, _facts(today), (1,)) == date(2026, 3, 9)
    assert due_stages("open", date(2026, 3, 9), today, CAL, (1,)) == ["remind-1"]


def test_without_reminders_only_overdue_items_are_candidates() -> None:
    today = date(2026, 3, 6)
    assert latest_due_date(today, _facts(today), ()) == date(2026, 3, 5)


@pytest.mark.parametrize("day", [date(2026, 5, 8), date(2026, 5, 11), date(2026, 5, 20)])
def test_the_level_of_the_stages_is_the_ladders_escalation_level(day: date) -> None:
    due = date(2026, 4, 30)
    assert level_of(due_stages("open", due, day, CAL)) == escalation_level("open", due, day, CAL)


def test_reports_of_batches_add_up() -> None:
    total = SweepReport(today=date(2026, 5, 18), dry_run=False)
    first = SweepReport(today=total.today, dry_run=False, candidates=2, notices=["B01"])
    first.stages.update({"overdue": 2, "escalate-1": 1})
    first.owed.update({"overdue": 3})
    first.escalated.append((7, 1))
    first.notification_ids.extend([1, 2, 3])
    second = SweepReport(today=total.today, dry_run=False, candidates=1, notices=["B01", "B02"])
    second.stages.update({"remind-3": 1})
    second.owed.update({"remind-3": 1})
    total.add(first)
    total.add(second)
    assert total.candidates == 3 and total.total_owed == 4
    assert total.notices == ["B01", "B02"] and total.notification_ids == [1, 2, 3]
    assert total.as_dict() == {
        "today": "2026-05-18",
        "dry_run": False,
        "candidates": 3,
        "stages": {"remind-3": 1, "overdue": 2, "escalate-1": 1},
        "owed": {"remind-3": 1, "overdue": 3},
        "escalated": 1,
        "notices": ["B01", "B02"],
    }
