"""Working days (工作日): the official Chinese calendar, admin overrides, a safe fallback.

Deadlines are counted in working days (SPEC §3). Which days are working days
comes, in order of precedence, from

1. the admin's overrides (the `holiday` table, loaded by `closeout holidays
   import`), then
2. the bundled `chinesecalendar` package (official holidays and make-up
   workdays, 调休), then
3. weekends-only, for a year neither of them covers, so that a deadline that
   crosses into an unpublished year never crashes anything.

Everything here is pure: the caller loads the overrides and passes them in.
"""

from __future__ import annotations

import functools
import logging
import threading
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import MAXYEAR, date
from pathlib import Path

import chinese_calendar

from models.sheets import ImportRefused, RowError, parse_date, read_tables

log = logging.getLogger(__name__)

#: Monday=0 … Friday=4: the weekdays that are working days in the fallback.
FALLBACK_WORKING_WEEKDAYS = frozenset({0, 1, 2, 3, 4})

# Years already warned about in this process. The warning is about the
# deployment (a year with no holiday data), not about one calendar, and a new
# calendar is built for every sweep, so the memory is per process.
_warned_years: set[int] = set()
_warned_lock = threading.Lock()


def _warn_once(year: int) -> None:
    with _warned_lock:
        if year in _warned_years:
            return
        _warned_years.add(year)
    log.warning(
        "no holiday data for %d: counting only weekends as days off; "
        "load the official calendar with `closeout holidays import FILE`",
        year,
    )


# The bundled data never changes within a process, so every calendar shares
# one computation per year; only the admin's overrides differ between them.
@functools.cache
def _official_workdays(year: int) -> tuple[int, ...] | None:
    """Ordinals of the year's working days per chinesecalendar, or None if it has no data."""
    first = date(year, 1, 1).toordinal()
    last = date(year, 12, 31).toordinal()
    try:
        return tuple(
            ordinal
            for ordinal in range(first, last + 1)
            if chinese_calendar.is_workday(date.fromordinal(ordinal))
        )
    except NotImplementedError:
        return None


@functools.cache
def _weekday_workdays(year: int) -> tuple[int, ...]:
    first = date(year, 1, 1).toordinal()
    last = date(year, 12, 31).toordinal()
    return tuple(
        ordinal
        for ordinal in range(first, last + 1)
        if date.fromordinal(ordinal).weekday() in FALLBACK_WORKING_WEEKDAYS
    )


class WorkCalendar:
    """Which days are working days: overrides > chinesecalendar > weekends-only.

    Build one from the admin's overrides (`{day: is_workday}`, from the
    `holiday` table); it is cheap, and immutable once built. A year is
    computed the first time it is asked about and then kept as a sorted list
    of working-day ordinals, so every question is one or two binary searches
    plus a walk over whole years, never over single days.

    A year is "loaded by the admin" when at least one override falls in it:
    the admin imported that year's calendar (typically only its holidays and
    make-up workdays), so ordinary days of that year follow the weekends and
    no warning is logged. A year with neither chinesecalendar data nor any
    override falls back to weekends-only and logs one warning per process.
    """

    __slots__ = ("_overrides_by_year", "_years")

    def __init__(self, overrides: Mapping[date, bool] | None = None) -> None:
        by_year: dict[int, dict[int, bool]] = {}
        for day, is_workday in (overrides or {}).items():
            by_year.setdefault(day.year, {})[day.toordinal()] = bool(is_workday)
        self._overrides_by_year = by_year
        # year -> sorted ordinals of its working days
        self._years: dict[int, Sequence[int]] = {}

    def _year(self, year: int) -> Sequence[int]:
        cached = self._years.get(year)
        if cached is not None:
            return cached
        overrides = self._overrides_by_year.get(year, {})
        official = _official_workdays(year)
        if official is None:
            if not overrides:
                _warn_once(year)
            official = _weekday_workdays(year)
        days: Sequence[int] = official
        if overrides:
            chosen = set(official)
            for ordinal, is_workday in overrides.items():
                if is_workday:
                    chosen.add(ordinal)
                else:
                    chosen.discard(ordinal)
            days = sorted(chosen)
        self._years[year] = days
        return days

    def has_data(self, year: int) -> bool:
        """Whether `year` is covered by chinesecalendar or by the admin's overrides.

        False means the year is counted weekends-only.
        """
        if year in self._overrides_by_year:
            return True
        try:
            chinese_calendar.is_workday(date(year, 1, 1))
        except NotImplementedError:
            return False
        return True

    def is_workday(self, day: date) -> bool:
        """Whether `day` is a working day. Never raises for a year without data."""
        days = self._year(day.year)
        ordinal = day.toordinal()
        index = bisect_right(days, ordinal)
        return index > 0 and days[index - 1] == ordinal

    def workdays_between(self, a: date, b: date) -> int:
        """Working days strictly after `a` up to and including `b`; negative if `b` < `a`.

        Guarantees `workdays_between(a, a) == 0`, antisymmetry
        (`workdays_between(b, a) == -workdays_between(a, b)`) and additivity
        (`between(a, b) + between(b, c) == between(a, c)`). With `a` = a due
        date and `b` = today it is the working days overdue; with `a` = today
        and `b` = a due date, the working days left (0 on the due day itself).
        """
        if b < a:
            return -self.workdays_between(b, a)
        days_a = self._year(a.year)
        after_a = bisect_right(days_a, a.toordinal())
        if a.year == b.year:
            return bisect_right(days_a, b.toordinal()) - after_a
        count = len(days_a) - after_a
        for year in range(a.year + 1, b.year):
            count += len(self._year(year))
        return count + bisect_right(self._year(b.year), b.toordinal())

    def add_workdays(self, start: date, n: int) -> date:
        """The `n`-th working day after `start`; `start` itself never counts.

        This is the due date of "N working days" from a creation date: created
        on a Friday with n=1, due the next Monday (or later, across holidays).
        For n >= 1 the result is a working day and
        `workdays_between(start, result) == n`. n=0 returns `start` unchanged,
        whether or not it is a working day, so that identity holds for 0 too.

        Raises ValueError for negative n and OverflowError past `date.max`.
        """
        if n < 0:
            raise ValueError(f"n must be 0 or more working days, not {n}")
        if n == 0:
            return start
        year = start.year
        days = self._year(year)
        index = bisect_right(days, start.toordinal()) + n - 1
        while index >= len(days):
            index -= len(days)
            year += 1
            if year > MAXYEAR:
                raise OverflowError(f"{n} working days after {start} is past {date.max}")
            days = self._year(year)
        return date.fromordinal(days[index])


# --- the admin's holiday file -------------------------------------------------

#: Columns of a holiday file and the headers accepted for them (English or Chinese).
HOLIDAY_COLUMNS: dict[str, tuple[str, ...]] = {
    "date": ("日期", "day"),
    "is_workday": ("是否工作日", "workday", "工作日"),
    "name": ("名称", "name", "节日", "说明"),
}

#: Values accepted in the is_workday column (compared case-insensitively).
WORKDAY_VALUES: dict[str, bool] = {
    "1": True,
    "true": True,
    "yes": True,
    "y": True,
    "是": True,
    "班": True,
    "上班": True,
    "工作日": True,
    "0": False,
    "false": False,
    "no": False,
    "n": False,
    "否": False,
    "休": False,
    "放假": False,
    "休息日": False,
}


class HolidayFileError(ImportRefused):
    """The holiday file cannot be imported; nothing was read.

    `errors` lists every problem as `FILE:row:column: reason`.
    """


@dataclass(frozen=True)
class HolidayRow:
    """One day of an admin's holiday file."""

    day: date
    is_workday: bool
    name: str = ""


def read_holiday_file(path: Path | str) -> list[HolidayRow]:
    """Read a holiday file (CSV, UTF-8, or the first sheet of an .xlsx) into rows.

    The header row names the columns `date`, `is_workday` and optionally
    `name` (or 日期, 是否工作日, 名称). is_workday accepts 1/0, true/false,
    yes/no, 是/否, 班/休. Returns the rows in file order, each day at most once.

    Raises `HolidayFileError` listing every problem (`FILE:row:column: reason`,
    the header being row 1) and returning nothing when there is any.
    """
    path = Path(path)
    sheet = path.name
    try:
        table = read_tables(
            path,
            {sheet: HOLIDAY_COLUMNS},
            required={sheet: ("date", "is_workday")},
            single=True,
        )[sheet]
    except ImportRefused as exc:
        raise HolidayFileError(exc.errors) from None

    errors: list[RowError] = []
    rows: list[HolidayRow] = []
    first_row_of: dict[date, int] = {}
    for row in table.rows:
        day: date | None = None
        try:
            day = parse_date(row.cells.get("date"))
        except ValueError as exc:
            errors.append(RowError(sheet, row.number, "date", str(exc)))
        flag = WORKDAY_VALUES.get(row.text("is_workday").lower())
        if flag is None:
            shown = row.text("is_workday")
            reason = (
                f"{shown!r} is not one of 1/0, true/false, yes/no, 是/否, 班/休"
                if shown
                else "is_workday is required (1/0, true/false, yes/no, 是/否, 班/休)"
            )
            errors.append(RowError(sheet, row.number, "is_workday", reason))
        if day is not None:
            if day in first_row_of:
                errors.append(
                    RowError(
                        sheet, row.number, "date", f"{day} is already on row {first_row_of[day]}"
                    )
                )
            else:
                first_row_of[day] = row.number
        if day is not None and flag is not None:
            rows.append(HolidayRow(day, flag, row.text("name")))
    if errors:
        raise HolidayFileError(errors)
    return rows


def parse_holiday_file(path: Path | str) -> dict[date, bool]:
    """The overrides `{day: is_workday}` of a holiday file; see `read_holiday_file`.

    Raises `HolidayFileError` listing every problem.
    """
    return {row.day: row.is_workday for row in read_holiday_file(path)}
