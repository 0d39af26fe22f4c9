"""The per-process working-day calendar follows an admin's holiday imports (SPEC §3)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine

from models.db import transaction
from models.holidays import CalendarCache, import_holidays
from models.workdays import HolidayRow

#: A Tuesday that chinesecalendar counts as a working day.
TUESDAY = date(2026, 3, 3)
#: A Saturday, a day off by the official calendar.
SATURDAY = date(2026, 3, 7)


def _import(engine: Engine, *rows: HolidayRow) -> None:
    with transaction(engine) as session:
        import_holidays(session, rows)


def _is_workday(engine: Engine, cache: CalendarCache, day: date) -> bool:
    with transaction(engine) as session:
        return cache.calendar(session).is_workday(day)


def test_the_calendar_is_reused_while_the_holidays_are_unchanged(engine: Engine) -> None:
    _import(engine, HolidayRow(day=TUESDAY, is_workday=False, name="day off"))
    cache = CalendarCache()
    with transaction(engine) as session:
        first = cache.calendar(session)
    with transaction(engine) as session:
        assert cache.calendar(session) is first


def test_an_import_adding_a_day_takes_effect_on_the_next_look_up(engine: Engine) -> None:
    cache = CalendarCache()
    assert _is_workday(engine, cache, TUESDAY)
    _import(engine, HolidayRow(day=TUESDAY, is_workday=False, name="day off"))
    assert not _is_workday(engine, cache, TUESDAY)


def test_an_import_changing_a_stored_day_takes_effect_on_the_next_look_up(engine: Engine) -> None:
    # Same days before and after, only one flag flips: a row count or the latest
    # day would not notice this change.
    _import(
        engine,
        HolidayRow(day=TUESDAY, is_workday=False, name="day off"),
        HolidayRow(day=SATURDAY, is_workday=False, name="rest"),
    )
    cache = CalendarCache()
    assert not _is_workday(engine, cache, SATURDAY)
    _import(engine, HolidayRow(day=SATURDAY, is_workday=True, name="rest"))
    assert _is_workday(engine, cache, SATURDAY)


def test_re_importing_the_same_days_keeps_the_calendar(engine: Engine) -> None:
    day_off = HolidayRow(day=TUESDAY, is_workday=False, name="day off")
    _import(engine, day_off)
    cache = CalendarCache()
    with transaction(engine) as session:
        first = cache.calendar(session)
    _import(engine, day_off)
    with transaction(engine) as session:
        assert cache.calendar(session) is first
