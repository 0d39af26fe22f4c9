"""The follow-up ladder of SPEC §5: which reminder and escalation stages an item has reached.

Pure: the sweep asks `due_stages` for every unfinished item and makes sure a
notification row exists for each (item, stage, due date); the unique key makes
a re-run harmless, and a new due date (an approved extension) restarts the
ladder because the key changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from models.deadlines import days_overdue, is_overdue
from models.roles import FINISHED
from models.workdays import WorkCalendar

#: Working days before the due date at which the responsible person is reminded (REMIND_DAYS).
DEFAULT_REMIND_DAYS: tuple[int, ...] = (3, 1)
#: Working days overdue for escalation level 1, 2, … (ESCALATE_DAYS).
DEFAULT_ESCALATE_DAYS: tuple[int, ...] = (5, 10)

#: Level 1: reminder talk (谈话提醒), to the secretary and the inspector who logged it.
LEVEL_TALK = 1
#: Level 2: formal inquiry (约谈函询), to the leaders of the parent org.
LEVEL_INQUIRY = 2

REMIND_STAGE_PREFIX = "remind-"
ESCALATE_STAGE_PREFIX = "escalate-"
#: Stage: 3 working days or fewer before due (with the default REMIND_DAYS).
REMIND_3 = "remind-3"
#: Stage: 1 working day or fewer before due, including the due day itself.
REMIND_1 = "remind-1"
#: Stage: the due date has passed.
OVERDUE = "overdue"
#: Stage: escalation level 1 reached.
ESCALATE_1 = "escalate-1"
#: Stage: escalation level 2 reached.
ESCALATE_2 = "escalate-2"


def remind_stage(days: int) -> str:
    """The stage name of the reminder `days` working days before due, e.g. "remind-3"."""
    return f"{REMIND_STAGE_PREFIX}{days}"


def escalate_stage(level: int) -> str:
    """The stage name of escalation `level`, e.g. "escalate-1"."""
    return f"{ESCALATE_STAGE_PREFIX}{level}"


def _check_escalate_days(escalate_days: Sequence[int]) -> None:
    # Fail fast on a misconfigured ladder rather than escalate in the wrong order.
    if any(days < 1 for days in escalate_days) or any(
        later <= earlier for earlier, later in zip(escalate_days, escalate_days[1:], strict=False)
    ):
        raise ValueError(
            f"escalate_days must be ascending whole working days of at least 1, not {escalate_days}"
        )


def escalation_level(
    status: str,
    due_date: date | None,
    today: date,
    cal: WorkCalendar,
    escalate_days: Sequence[int] = DEFAULT_ESCALATE_DAYS,
) -> int:
    """The escalation level the item has reached today: 0, 1 (谈话提醒) or 2 (约谈函询).

    Level k is reached once the item is at least `escalate_days[k-1]` working
    days overdue (holidays and weekends do not count). Finished items and
    items without a due date are level 0. Raises ValueError when
    `escalate_days` is not ascending and positive.
    """
    _check_escalate_days(escalate_days)
    return _level(days_overdue(status, due_date, today, cal), escalate_days)


def _level(overdue: int, escalate_days: Sequence[int]) -> int:
    # Thresholds are ascending and >= 1, so an item not overdue is level 0.
    return sum(1 for threshold in escalate_days if overdue >= threshold)


def due_stages(
    status: str,
    due_date: date | None,
    today: date,
    cal: WorkCalendar,
    remind_days: Sequence[int] = DEFAULT_REMIND_DAYS,
    escalate_days: Sequence[int] = DEFAULT_ESCALATE_DAYS,
) -> list[str]:
    """The ladder stages the item has reached today, which a sweep should make sure were sent.

    - Before the due date is past: at most one reminder, the most recent one
      reached. The stage for N is reached when at most N working days are left
      (`workdays_between(today, due) <= N`; the due day itself has 0 left).
      Only the most recent is returned so a sweep that missed a day, or an
      item created close to its deadline, does not send "3 days left" and
      "1 day left" at once; an earlier stage that was never sent is superseded.
    - Once past due: `OVERDUE`, then every escalation stage reached, in order
      (`ESCALATE_1`, `ESCALATE_2`): each goes to different people, so none is
      superseded. Reminders are no longer returned.

    Finished items and items without a due date have no stages. Raises
    ValueError when `escalate_days` is not ascending and positive.
    """
    _check_escalate_days(escalate_days)
    if status in FINISHED or due_date is None:
        return []
    if not is_overdue(status, due_date, today):
        left = cal.workdays_between(today, due_date)
        reached = [days for days in remind_days if left <= days]
        return [remind_stage(min(reached))] if reached else []
    level = _level(cal.workdays_between(due_date, today), escalate_days)
    return [OVERDUE, *(escalate_stage(k) for k in range(1, level + 1))]
