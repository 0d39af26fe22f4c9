"""Working days (SPEC §3): official holidays, make-up workdays, overrides, the fallback."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path

import chinese_calendar  # type: ignore[import-untyped]
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook  # type: ignore[import-untyped]

from models import workdays
from models.workdays import (
    HolidayFileError,
    HolidayRow,
    WorkCalendar,
    parse_holiday_file,
    read_holiday_file,
)

CAL = WorkCalendar()
NATIONAL_DAY_2025 = [date(2025, 10, day) for day in range(1, 9)]
SUNDAY_MAKE_UP = date(2025, 9, 28)
SATURDAY_MAKE_UP = date(2025, 10, 11)

# 2024-2026 are covered by chinesecalendar 1.11, 2027-2030 are not.
dates = st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31))
counts = st.integers(min_value=0, max_value=600)
overrides = st.dictionaries(dates, st.booleans(), max_size=40)


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which years this process already warned about."""
    monkeypatch.setattr(workdays, "_warned_years", set())


def naive_between(cal: WorkCalendar, a: date, b: date) -> int:
    """Day-by-day reference count for workdays_between."""
    if b < a:
        return -naive_between(cal, b, a)
    return sum(cal.is_workday(a + timedelta(days=i)) for i in range(1, (b - a).days + 1))


# --- which days are working days ----------------------------------------------


def test_national_day_holiday_is_not_a_working_day() -> None:
    assert [CAL.is_workday(day) for day in NATIONAL_DAY_2025] == [False] * 8
    assert CAL.is_workday(date(2025, 10, 9))


def test_make_up_workday_on_a_sunday_counts() -> None:
    assert SUNDAY_MAKE_UP.weekday() == 6
    assert CAL.is_workday(SUNDAY_MAKE_UP)


def test_make_up_workday_on_a_saturday_counts() -> None:
    assert SATURDAY_MAKE_UP.weekday() == 5
    assert CAL.is_workday(SATURDAY_MAKE_UP)


def test_an_ordinary_weekend_is_not_a_working_day() -> None:
    assert not CAL.is_workday(date(2025, 10, 18))
    assert not CAL.is_workday(date(2025, 10, 19))


def test_every_day_of_2025_and_2026_agrees_with_chinesecalendar() -> None:
    day = date(2025, 1, 1)
    while day <= date(2026, 12, 31):
        assert CAL.is_workday(day) == chinese_calendar.is_workday(day), day
        day += timedelta(days=1)


def test_override_beats_the_official_calendar() -> None:
    cal = WorkCalendar({date(2025, 10, 9): False, date(2025, 10, 4): True})
    assert not cal.is_workday(date(2025, 10, 9))
    assert cal.is_workday(date(2025, 10, 4))
    assert cal.is_workday(date(2025, 10, 10))  # days not listed keep the official answer


# --- counting -----------------------------------------------------------------


def test_n_working_days_skip_the_national_day_holiday() -> None:
    assert CAL.add_workdays(date(2025, 9, 30), 1) == date(2025, 10, 9)
    assert CAL.add_workdays(date(2025, 9, 30), 3) == SATURDAY_MAKE_UP


def test_the_start_day_does_not_count() -> None:
    # Created on a Friday with one working day: due Monday, not Friday.
    assert CAL.add_workdays(date(2025, 10, 17), 1) == date(2025, 10, 20)


def test_zero_working_days_is_the_start_day_itself() -> None:
    assert CAL.add_workdays(date(2025, 10, 3), 0) == date(2025, 10, 3)


def test_negative_working_days_are_refused() -> None:
    with pytest.raises(ValueError):
        CAL.add_workdays(date(2025, 10, 3), -1)


def test_working_days_between_count_after_the_first_day_up_to_the_last() -> None:
    assert CAL.workdays_between(date(2025, 9, 30), date(2025, 9, 30)) == 0
    assert CAL.workdays_between(date(2025, 9, 30), date(2025, 10, 8)) == 0
    assert CAL.workdays_between(date(2025, 9, 30), date(2025, 10, 9)) == 1
    assert CAL.workdays_between(date(2025, 9, 26), date(2025, 10, 13)) == 7
    assert CAL.workdays_between(date(2025, 10, 9), date(2025, 9, 30)) == -1


def test_working_days_between_spans_many_years() -> None:
    first, last = date(2004, 1, 1).toordinal(), date(2026, 12, 31).toordinal()
    expected = sum(
        chinese_calendar.is_workday(date.fromordinal(day)) for day in range(first + 1, last + 1)
    )
    assert CAL.workdays_between(date(2004, 1, 1), date(2026, 12, 31)) == expected


# --- years without data ---------------------------------------------------------


def test_year_without_data_falls_back_to_weekends_and_warns_once(
    fresh_warnings: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="models.workdays")
    first, second = WorkCalendar(), WorkCalendar()
    assert first.is_workday(date(2028, 1, 3))  # a Monday
    assert not first.is_workday(date(2028, 1, 1))  # a Saturday
    assert second.is_workday(date(2028, 10, 2))  # National Day in reality, unknown here
    first.add_workdays(date(2028, 3, 1), 30)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2028" in warnings[0].getMessage()
    assert not first.has_data(2028)


def test_each_year_without_data_gets_its_own_warning(
    fresh_warnings: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="models.workdays")
    WorkCalendar().workdays_between(date(2026, 6, 1), date(2029, 6, 1))
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 3
    for year in ("2027", "2028", "2029"):
        assert sum(f"for {year}:" in message for message in messages) == 1


def test_year_before_2004_falls_back_too() -> None:
    assert CAL.is_workday(date(2003, 10, 1))  # a Wednesday; weekends only
    assert not CAL.is_workday(date(2003, 10, 4))


def test_deadline_crossing_into_an_unknown_year_does_not_raise() -> None:
    # 28-31 Dec 2026 are 4 working days; 2027 counts weekends only from 1 Jan.
    due = CAL.add_workdays(date(2026, 12, 25), 20)
    assert due == date(2027, 1, 22)
    assert CAL.workdays_between(date(2026, 12, 25), due) == 20
    assert CAL.workdays_between(due, date(2026, 12, 25)) == -20


def test_admin_loaded_year_overrides_the_fallback(
    fresh_warnings: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="models.workdays")
    cal = WorkCalendar({date(2027, 1, 1): False, date(2027, 2, 6): True})
    assert not cal.is_workday(date(2027, 1, 1))  # listed: a holiday on a Friday
    assert cal.is_workday(date(2027, 2, 6))  # listed: a make-up Saturday
    assert cal.is_workday(date(2027, 1, 4))  # not listed: an ordinary Monday
    assert not cal.is_workday(date(2027, 1, 9))  # not listed: an ordinary Saturday
    assert cal.has_data(2027)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


# --- properties -----------------------------------------------------------------


@given(start=dates, n=st.integers(min_value=1, max_value=600))
def test_n_working_days_after_a_day_is_a_working_day(start: date, n: int) -> None:
    assert CAL.is_workday(CAL.add_workdays(start, n))


@given(start=dates, n=counts)
def test_working_days_between_a_day_and_n_working_days_later_is_n(start: date, n: int) -> None:
    assert CAL.workdays_between(start, CAL.add_workdays(start, n)) == n


@given(start=dates, n=counts)
def test_one_more_working_day_is_a_later_day(start: date, n: int) -> None:
    assert CAL.add_workdays(start, n) < CAL.add_workdays(start, n + 1)


@given(a=dates, b=dates, n=counts)
def test_a_later_start_never_gives_an_earlier_due_date(a: date, b: date, n: int) -> None:
    early, late = sorted((a, b))
    assert CAL.add_workdays(early, n) <= CAL.add_workdays(late, n)


@given(a=dates, b=dates, c=dates)
def test_working_days_between_is_antisymmetric_and_additive(a: date, b: date, c: date) -> None:
    assert CAL.workdays_between(b, a) == -CAL.workdays_between(a, b)
    assert CAL.workdays_between(a, b) + CAL.workdays_between(b, c) == CAL.workdays_between(a, c)


@given(a=dates, span=st.integers(min_value=-400, max_value=400))
def test_working_days_between_matches_counting_day_by_day(a: date, span: int) -> None:
    b = a + timedelta(days=span)
    assert CAL.workdays_between(a, b) == naive_between(CAL, a, b)


@given(days=overrides, start=dates, n=counts)
def test_arithmetic_holds_with_overrides(days: dict[date, bool], start: date, n: int) -> None:
    cal = WorkCalendar(days)
    due = cal.add_workdays(start, n)
    assert cal.workdays_between(start, due) == n
    assert cal.workdays_between(due, start) == -n
    if n >= 1:
        assert cal.is_workday(due)
    assert cal.add_workdays(start, n) < cal.add_workdays(start, n + 1)


@given(days=overrides, day=dates)
def test_an_override_always_wins_and_other_days_follow_the_rules(
    days: dict[date, bool], day: date
) -> None:
    cal = WorkCalendar(days)
    if day in days:
        expected = days[day]
    elif day.year <= 2026:
        expected = chinese_calendar.is_workday(day)
    else:
        expected = day.weekday() < 5
    assert cal.is_workday(day) == expected


@given(days=overrides, a=dates, span=st.integers(min_value=-200, max_value=200))
def test_counting_with_overrides_matches_counting_day_by_day(
    days: dict[date, bool], a: date, span: int
) -> None:
    cal = WorkCalendar(days)
    b = a + timedelta(days=span)
    assert cal.workdays_between(a, b) == naive_between(cal, a, b)


# --- the admin's holiday file -----------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_holiday_csv_with_english_headers_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path / "2027.csv",
        "date,is_workday,name\n2027-01-01,0,New Year\n2027-02-06,1,Spring Festival make-up\n",
    )
    assert read_holiday_file(path) == [
        HolidayRow(date(2027, 1, 1), False, "New Year"),
        HolidayRow(date(2027, 2, 6), True, "Spring Festival make-up"),
    ]
    assert parse_holiday_file(path) == {date(2027, 1, 1): False, date(2027, 2, 6): True}


def test_holiday_csv_with_chinese_headers_and_values_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path / "节假日.csv",
        "\ufeff日期,是否工作日,名称\n2027/1/1,休,元旦\n2027年2月6日,班,春节调休\n2027.2.8,否,春节\n"
        "2027-02-20,是,\n",
    )
    assert parse_holiday_file(path) == {
        date(2027, 1, 1): False,
        date(2027, 2, 6): True,
        date(2027, 2, 8): False,
        date(2027, 2, 20): True,
    }
    assert read_holiday_file(path)[0].name == "元旦"


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("1", True),
        ("0", False),
        ("TRUE", True),
        ("false", False),
        ("Yes", True),
        ("no", False),
        ("是", True),
        ("否", False),
        ("班", True),
        ("休", False),
    ],
)
def test_every_documented_is_workday_value_is_accepted(
    tmp_path: Path, cell: str, expected: bool
) -> None:
    path = write(tmp_path / "h.csv", f"date,is_workday\n2027-01-01,{cell}\n")
    assert parse_holiday_file(path) == {date(2027, 1, 1): expected}


def test_holiday_workbook_first_sheet_is_read(tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "2027年"
    sheet.append(["日期", "是否工作日", "名称"])
    sheet.append([date(2027, 1, 1), 0, "元旦"])
    sheet.append(["2027-02-06", "班", "春节调休"])
    sheet.append([None, None, None])
    sheet.append([date(2027, 2, 8), False, "春节"])
    book.create_sheet("notes").append(["ignored"])
    path = tmp_path / "holidays.xlsx"
    book.save(path)
    assert parse_holiday_file(path) == {
        date(2027, 1, 1): False,
        date(2027, 2, 6): True,
        date(2027, 2, 8): False,
    }


def test_bad_holiday_rows_are_all_reported_with_file_row_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bad.csv",
        "date,is_workday\n"
        "2027-01-01,0\n"
        "2027-13-01,1\n"  # row 3: no such month
        "2027-01-02,maybe\n"  # row 4
        "\n"  # row 5: blank, skipped
        "2027-01-01,1\n"  # row 6: duplicate of row 2
        ",\n"  # row 7: blank, skipped
        "tomorrow,\n",  # row 8: two problems
    )
    with pytest.raises(HolidayFileError) as caught:
        parse_holiday_file(path)
    errors = caught.value.errors
    assert [e.split(": ", 1)[0] for e in errors] == [
        "bad.csv:3:date",
        "bad.csv:4:is_workday",
        "bad.csv:6:date",
        "bad.csv:8:date",
        "bad.csv:8:is_workday",
    ]
    assert "row 2" in errors[2]
    assert "maybe" in errors[1]


def test_holiday_file_without_the_is_workday_column_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", "date,name\n2027-01-01,元旦\n")
    with pytest.raises(HolidayFileError) as caught:
        parse_holiday_file(path)
    assert caught.value.errors == ["h.csv:1:is_workday: required column is missing"]


def test_holiday_file_of_another_format_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "h.txt", "date,is_workday\n")
    with pytest.raises(HolidayFileError):
        parse_holiday_file(path)


def test_an_imported_year_drives_the_calendar(tmp_path: Path) -> None:
    path = write(tmp_path / "2027.csv", "日期,是否工作日\n2027-01-01,休\n2027-02-06,班\n")
    cal = WorkCalendar(parse_holiday_file(path))
    assert cal.add_workdays(date(2026, 12, 31), 1) == date(2027, 1, 4)
    assert cal.add_workdays(date(2027, 2, 5), 1) == date(2027, 2, 6)
