"""The admin's holiday data in the database, and the calendar built from it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import cast

from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from models.tables import Holiday, Meta
from models.workdays import HolidayRow, WorkCalendar

#: Key in the `meta` table of a token that changes whenever the holiday days do,
#: so a process that keeps a calendar knows, with one primary-key read, when to
#: build it again.
META_HOLIDAYS_VERSION = "holidays_version"


def load_calendar(session: Session) -> WorkCalendar:
    """The working-day calendar: the admin's days over the official calendar."""
    rows = session.exec(select(col(Holiday.day), col(Holiday.is_workday))).all()
    return WorkCalendar({day: is_workday for day, is_workday in rows})


#: Built once and run on the session's connection, past the ORM: the probe runs
#: on every bot update, so it must cost less than loading the days would.
_VERSION = sa_select(col(Meta.value)).where(col(Meta.key) == META_HOLIDAYS_VERSION)


def holidays_version(session: Session) -> str | None:
    """The token of the holiday days as they are now; None until the first import changed any."""
    if _NOTED in session.info:
        return cast("str | None", session.info[_NOTED])
    return session.connection().execute(_VERSION).scalar()


#: The token as a column, for a statement that runs on every update anyway
#: (the bot's look-up): read with it and passed to `note_version`, it spares
#: `CalendarCache` a round trip of its own to the database.
VERSION_COLUMN = _VERSION.scalar_subquery().label(META_HOLIDAYS_VERSION)
_NOTED = "closeout_holidays_version"


def note_version(session: Session, version: str | None) -> None:
    """Keep the token a statement of this transaction read with `VERSION_COLUMN`."""
    session.info[_NOTED] = version


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
    if added or changed:
        _new_version(session)
    return added, changed


def _new_version(session: Session) -> None:
    # Insert or update in one statement: two imports at once must not fail on
    # each other's row. A fresh random token, not a counter: only "different
    # from what a process saw" matters.
    session.info.pop(_NOTED, None)  # a token noted earlier in this transaction is old now
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(Meta).values(key=META_HOLIDAYS_VERSION, value=uuid.uuid4().hex)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["key"], set_={"value": statement.excluded.value}
        )
    )


class CalendarCache:
    """One process's working-day calendar, built again only when the holidays changed.

    Loading every holiday row and building a `WorkCalendar` (which then computes
    each year it is asked about) on every bot update costs more than the update's
    own query; a calendar changes a few times a year. `calendar(session)` reads
    the version token (one primary-key look-up) and reuses the calendar built
    for that token, so an admin's `closeout holidays import` takes effect on the
    next update. Safe across the bot's worker threads without a lock: the kept
    pair is replaced in one assignment, and a race only builds a calendar twice.
    """

    def __init__(self) -> None:
        self._kept: tuple[str | None, WorkCalendar] | None = None

    def calendar(self, session: Session) -> WorkCalendar:
        version = holidays_version(session)  # noted by the look-up, or read
        kept = self._kept
        if kept is not None and kept[0] == version:
            return kept[1]
        calendar = load_calendar(session)
        self._kept = (version, calendar)
        return calendar
