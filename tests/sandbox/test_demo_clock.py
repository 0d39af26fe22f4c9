"""The sandbox's clock and calendar: time moves only forward, a move lands at the start
of a working day, and every firing of the deployment's calendar in the skipped time
runs in order, with the clock at its own time."""

from __future__ import annotations

import threading
import time as system_time
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from models.workdays import WorkCalendar
from sandbox.clock import SandboxClock
from sandbox.timeline import (
    LANDING,
    MAX_JUMP,
    Busy,
    ClockRefused,
    Timeline,
    date_target,
    firings_between,
    step_target,
)
from tasks.scheduler import CALENDAR, Entry

ZONE = ZoneInfo("Asia/Shanghai")


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=ZONE)


class Source:
    """A system clock the test moves."""

    def __init__(self, start: datetime) -> None:
        self.now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now


class Recorder:
    """The timeline's hands: what it fired (with the clock then), settled and pumped."""

    def __init__(self, clock: SandboxClock) -> None:
        self.clock = clock
        self.fired: list[tuple[str, tuple[object, ...], datetime]] = []
        self.settled = 0
        self.pumped = 0
        self.moved: list[datetime] = []

    def fire(self, entry: Entry) -> None:
        self.fired.append((entry.actor_name, entry.args, self.clock().astimezone(ZONE)))

    def settle(self) -> None:
        self.settled += 1

    def pump(self) -> None:
        self.pumped += 1


def timeline_at(start: datetime) -> tuple[Timeline, Recorder, Source]:
    source = Source(start)
    clock = SandboxClock(source=source)
    hands = Recorder(clock)
    timeline = Timeline(
        clock,
        ZONE,
        fire=hands.fire,
        settle=hands.settle,
        pump=hands.pump,
        calendar=WorkCalendar,
        on_moved=hands.moved.append,
    )
    return timeline, hands, source


# -- the clock -------------------------------------------------------------------------


def test_the_sandbox_clock_runs_with_the_system_and_only_moves_forward() -> None:
    source = Source(local(date(2026, 3, 2), 10))
    clock = SandboxClock(source=source)
    assert clock() == source.now
    source.now += timedelta(seconds=5)
    assert clock() == source.now  # it runs, unlike a frozen clock
    ahead = local(date(2026, 3, 3), 9)
    assert clock.move_to(ahead) == ahead
    assert clock.move_to(local(date(2026, 3, 2), 12)) == ahead  # never back
    source.now += timedelta(minutes=1)
    assert clock() == ahead + timedelta(minutes=1)
    assert clock.unix() == (ahead + timedelta(minutes=1)).timestamp()


def test_a_kept_sandbox_resumes_where_its_clock_was_but_never_before_the_system() -> None:
    source = Source(local(date(2026, 3, 2), 10))
    assert SandboxClock(local(date(2026, 3, 9), 9), source=source)() == local(date(2026, 3, 9), 9)
    assert SandboxClock(local(date(2026, 3, 1), 9), source=source)() == source.now
    with pytest.raises(ValueError):
        SandboxClock(datetime(2026, 3, 2, 9), source=source)


# -- the calendar ------------------------------------------------------------------------


def test_the_firings_of_a_weekend_come_in_time_order_without_the_pump() -> None:
    friday, monday = date(2026, 3, 6), date(2026, 3, 9)
    firings = firings_between(local(friday, 10), local(monday, 9), ZONE)
    names = [(f.entry.name, f.at.astimezone(ZONE).strftime("%a %H:%M")) for f in firings]
    assert names == [
        ("sweep-afternoon", "Fri 14:00"),
        ("bulletin-daily", "Fri 18:00"),
        ("recur", "Sat 00:10"),
        ("sweep-morning", "Sat 08:30"),
        ("sweep-afternoon", "Sat 14:00"),
        ("bulletin-daily", "Sat 18:00"),
        ("recur", "Sun 00:10"),
        ("sweep-morning", "Sun 08:30"),
        ("sweep-afternoon", "Sun 14:00"),
        ("bulletin-daily", "Sun 18:00"),
        ("recur", "Mon 00:10"),
        ("sweep-morning", "Mon 08:30"),
        ("bulletin-weekly", "Mon 09:00"),  # the end is included
    ]
    assert all(f.entry.every is None for f in firings)
    assert firings_between(local(monday, 9), local(monday, 9), ZONE) == []


def test_the_first_of_the_month_brings_the_monthly_bulletin_and_the_spot_checks() -> None:
    firings = firings_between(local(date(2026, 3, 31), 20), local(date(2026, 4, 1), 9), ZONE)
    assert [(f.entry.name, f.entry.args) for f in firings] == [
        ("recur", ()),
        ("spot-checks", ()),
        ("sweep-morning", ()),
        ("bulletin-monthly", ("monthly",)),
        ("bulletin-quarterly", ("quarterly",)),
    ]


def test_the_steps_land_at_the_start_of_a_working_day() -> None:
    calendar = WorkCalendar()
    friday_evening = local(date(2026, 3, 6), 19, 45)
    assert step_target(friday_evening, "day", ZONE, calendar) == local(date(2026, 3, 7), 9)
    assert step_target(friday_evening, "workday", ZONE, calendar) == local(date(2026, 3, 9), 9)
    assert step_target(friday_evening, "week", ZONE, calendar) == local(date(2026, 3, 13), 9)
    before_the_holiday = local(date(2026, 2, 13), 10)
    assert step_target(before_the_holiday, "workday", ZONE, calendar) == local(
        date(2026, 2, 14),
        9,  # a make-up working Saturday
    )
    assert LANDING == time(9, 0)
    with pytest.raises(ClockRefused, match="unknown step"):
        step_target(friday_evening, "month", ZONE, calendar)


def test_a_date_must_be_after_today_and_within_the_longest_jump() -> None:
    now = local(date(2026, 3, 2), 10)
    assert date_target(now, date(2026, 3, 20), ZONE) == local(date(2026, 3, 20), 9)
    for day in (date(2026, 3, 2), date(2026, 3, 1)):
        with pytest.raises(ClockRefused, match="not after today"):
            date_target(now, day, ZONE)
    with pytest.raises(ClockRefused, match="at most"):
        date_target(now, date(2026, 3, 2) + MAX_JUMP + timedelta(days=1), ZONE)


# -- the timeline --------------------------------------------------------------------------


def test_moving_a_working_day_fires_each_entry_with_the_clock_at_its_time() -> None:
    timeline, hands, _ = timeline_at(local(date(2026, 3, 6), 15))
    moved = timeline.advance(by="workday")
    assert [(name, args, at.strftime("%a %H:%M")) for name, args, at in hands.fired] == [
        ("bulletin", ("daily",), "Fri 18:00"),
        ("recur", (), "Sat 00:10"),
        ("sweep", (), "Sat 08:30"),
        ("sweep", (), "Sat 14:00"),
        ("bulletin", ("daily",), "Sat 18:00"),
        ("recur", (), "Sun 00:10"),
        ("sweep", (), "Sun 08:30"),
        ("sweep", (), "Sun 14:00"),
        ("bulletin", ("daily",), "Sun 18:00"),
        ("recur", (), "Mon 00:10"),
        ("sweep", (), "Mon 08:30"),
        ("bulletin", ("weekly",), "Mon 09:00"),
    ]
    assert moved.end == timeline.clock() == local(date(2026, 3, 9), 9)
    assert hands.moved == [moved.end]
    assert hands.pumped >= len(hands.fired) + 1  # after each firing, and at the end
    assert hands.settled >= len(hands.fired) + 1
    summary = moved.as_dict(ZONE)
    assert summary["to"] == "2026-03-09T09:00+08:00" and len(summary["fired"]) == 12
    assert summary["fired"][0] == {
        "name": "bulletin-daily",
        "actor": "bulletin",
        "args": ["daily"],
        "at": "2026-03-06T18:00+08:00",
        "error": None,
    }


def test_a_failed_firing_is_reported_and_the_next_ones_still_run() -> None:
    timeline, hands, _ = timeline_at(local(date(2026, 3, 2), 10))

    def fire(entry: Entry) -> None:
        hands.fire(entry)
        if entry.name == "sweep-afternoon":
            raise RuntimeError("database went away")

    timeline._fire = fire  # type: ignore[method-assign]
    moved = timeline.advance(by="day")
    errors = [(fired.name, fired.error) for fired in moved.fired if fired.error]
    assert errors == [("sweep-afternoon", "RuntimeError('database went away')")]
    assert [fired.name for fired in moved.fired][-1] == "sweep-morning"


def test_the_clock_is_moved_by_one_request_at_a_time() -> None:
    timeline, hands, _ = timeline_at(local(date(2026, 3, 2), 10))
    refused: list[Exception] = []

    def fire(entry: Entry) -> None:
        try:
            timeline.advance(by="day")
        except Busy as exc:
            refused.append(exc)

    timeline._fire = fire  # type: ignore[method-assign]
    timeline.advance(by="day")
    assert refused and all(isinstance(exc, Busy) for exc in refused)
    assert timeline.moving is False
    with pytest.raises(ClockRefused):
        timeline.advance()
    with pytest.raises(ClockRefused):
        timeline.advance(by="day", to=date(2026, 3, 20))
    assert timeline.status()["moving"] is False


def test_the_status_names_the_day_and_whether_it_is_a_working_day() -> None:
    timeline, _, _ = timeline_at(local(date(2026, 3, 7), 10, 5))
    assert timeline.status() == {
        "now": "2026-03-07T10:05:00+08:00",
        "date": "2026-03-07",
        "time": "10:05",
        "weekday": 5,
        "workday": False,
        "zone": "Asia/Shanghai",
        "moving": False,
    }


def test_the_running_calendar_fires_an_entry_when_its_time_comes() -> None:
    start = local(date(2026, 3, 2), 8, 29) + timedelta(seconds=59.6)
    began = system_time.monotonic()
    clock = SandboxClock(source=lambda: start + timedelta(seconds=system_time.monotonic() - began))
    fired = threading.Event()
    names: list[str] = []

    def fire(entry: Entry) -> None:
        names.append(entry.name)
        fired.set()

    timeline = Timeline(
        clock,
        ZONE,
        fire=fire,
        settle=lambda: None,
        pump=lambda: None,
        calendar=WorkCalendar,
        entries=CALENDAR,
    )
    timeline.start()
    try:
        assert fired.wait(5), "the 08:30 sweep did not fire"
    finally:
        timeline.stop()
    assert names == ["sweep-morning"]


def test_run_now_fires_the_entry_of_an_actor_once() -> None:
    timeline, hands, _ = timeline_at(local(date(2026, 3, 2), 7))
    fired = timeline.run_now("sweep")
    assert fired.name == "sweep-morning" and fired.error is None
    assert [name for name, _, _ in hands.fired] == ["sweep"]
