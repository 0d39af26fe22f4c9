"""The admin's holiday data in the database, and the calendar built from it."""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session, col, select

from models.tables import Holiday
from models.workdays import HolidayRow, WorkCalendar


def load_calendar(session: Session) -> WorkCalendar:
    """The working-day calendar: the admin's days over the official calendar."""
    rows = session.exec(select(col(Holiday.day), col(Holiday.is_workday))).all()
    return WorkCalendar({day: is_workday for day, is_workday in rows})


def import_holidays(session: Session, rows: Iterable[HolidayRow]) -> tuple[int, int]:
    """Upsert days by date; returns (added, changed). Re-importing a file changes nothing."""
    stored = {row.day: row for row in session.exec(select(Holiday)).all()}
    added = changed = 0
    for row in rows:
        current = stored.get(row.day)
        if current is None:
            session.add(Holiday(day=row.day, is_workday=row.is_workday, name=row.name))
            added += 1
        elif (current.is_workday, current.name) != (row.is_workday, row.name):
            current.is_workday, current.name = row.is_workday, row.name
            session.add(current)
            changed += 1
    session.flush()
    return added, changed
