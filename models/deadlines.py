"""Deadlines, overdue and the traffic light (红黄绿灯) of SPEC §3.

All of it is derived from plain values on demand, never stored: the caller
passes the item's status and due date, today's local date (computed in
TIMEZONE) and a `WorkCalendar`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import NamedTuple

from models.roles import FINISHED, SEVERITIES
from models.workdays import WorkCalendar

#: Working days from creation to the default due date, by severity: the graver
#: the problem, the sooner it must be rectified.
DEFAULT_DUE_WORKDAYS: dict[str, int] = {"general": 20, "serious": 10, "severe": 5}

#: The default yellow-light window, in working days (the WARN_DAYS setting).
DEFAULT_WARN_DAYS = 3

GREEN = "green"
YELLOW = "yellow"
RED = "red"
#: What each light looks like in a message.
LIGHT_EMOJI: dict[str, str] = {GREEN: "🟢", YELLOW: "🟡", RED: "🔴"}


class Milestone(NamedTuple):
    """A roadmap step as the light needs it; a plain `(due_date, done)` pair works too."""

    due_date: date
    done: bool


def due_from_workdays(created: date, n: int, cal: WorkCalendar) -> date:
    """The due date of "n working days" from `created` (which does not count).

    For n >= 1 the result is a working day with exactly n working days after
    `created` up to and including it; n=0 is `created` itself. Raises
    ValueError for negative n.
    """
    return cal.add_workdays(created, n)


def default_due_workdays(severity: str) -> int:
    """The default number of working days to rectify a problem of `severity`.

    Raises ValueError for a severity that is not one of `SEVERITIES`.
    """
    try:
        return DEFAULT_DUE_WORKDAYS[severity]
    except KeyError:
        raise ValueError(
            f"unknown severity {severity!r} (known: {', '.join(SEVERITIES)})"
        ) from None


def default_due_date(created: date, severity: str, cal: WorkCalendar) -> date:
    """The due date a new item gets when nobody chose one: by severity, in working days."""
    return due_from_workdays(created, default_due_workdays(severity), cal)


def is_overdue(status: str, due_date: date | None, today: date) -> bool:
    """Whether the item is overdue: not closed/cancelled and `today` is past its due date.

    The due date itself is not overdue; the next calendar day is, even a
    holiday. An item without a due date is never overdue.
    """
    return status not in FINISHED and due_date is not None and today > due_date


def days_overdue(status: str, due_date: date | None, today: date, cal: WorkCalendar) -> int:
    """Working days the item is overdue: those after the due date up to and including today.

    0 when not overdue, and also while only days off have passed since the
    due date (overdue on a Saturday after a Friday deadline is 0 working days).
    """
    if due_date is None or not is_overdue(status, due_date, today):
        return 0
    return cal.workdays_between(due_date, today)


def behind_roadmap(milestones: Iterable[Milestone | tuple[date, bool]], today: date) -> bool:
    """Whether some milestone's date has passed and it is not done (未达序时进度).

    A milestone due today is not behind yet, as an item due today is not overdue.
    """
    return any(not done and due < today for due, done in milestones)


def light(
    status: str,
    due_date: date | None,
    today: date,
    cal: WorkCalendar,
    warn_days: int = DEFAULT_WARN_DAYS,
    milestones: Iterable[Milestone | tuple[date, bool]] = (),
) -> str | None:
    """The item's traffic light: None, "green", "yellow" or "red".

    - None for a closed or cancelled item: finished items have no light.
    - "red" when overdue.
    - "yellow" when at most `warn_days` working days are left (the due day
      itself has 0 left), or when the item is behind its own roadmap.
    - "green" otherwise.

    An unfinished item without a due date still gets a light (every open item
    has one, per SPEC §3): it cannot be red or due soon, so it is yellow when
    behind its roadmap and green otherwise.
    """
    if status in FINISHED:
        return None
    if is_overdue(status, due_date, today):
        return RED
    if due_date is not None and cal.workdays_between(today, due_date) <= warn_days:
        return YELLOW
    if behind_roadmap(milestones, today):
        return YELLOW
    return GREEN


def light_emoji(value: str | None) -> str:
    """The emoji of a light, "" for no light."""
    return LIGHT_EMOJI.get(value, "") if value else ""
