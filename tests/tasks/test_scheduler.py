"""The calendar (DESIGN "Scheduling"): right local times, catch-up once, one scheduler at a time."""

from __future__ import annotations

import time as wall
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dramatiq
import pytest
import redis
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import Engine
from sqlmodel import Session, select

from models import clock
from models.tables import Lease
from settings import load_settings
from tasks.scheduler import (
    CALENDAR,
    DatabaseLease,
    Entry,
    Fired,
    RedisLease,
    Scheduler,
    start_scheduler,
)
from tests.conftest import service_missing

ZONE = ZoneInfo("Asia/Shanghai")
REDIS_URL = "redis://127.0.0.1:6379/0"


def _local(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), ZONE).astimezone(UTC)


class MemoryLease:
    """A lease always held, with the last firings in memory (a restart keeps them)."""

    def __init__(self) -> None:
        self.holder = "memory"
        self.ttl = timedelta(seconds=30)
        self.fired: dict[str, datetime] = {}

    def hold(self, now: datetime) -> bool:
        return True

    def release(self) -> None:
        pass

    def last_fired(self, entry: str) -> datetime | None:
        return self.fired.get(entry)

    def mark_fired(self, entry: str, moment: datetime) -> None:
        self.fired[entry] = moment


def _broker() -> StubBroker:
    broker = StubBroker()
    broker.emit_after("process_boot")
    return broker


def _calendar_firings(fired: list[Fired]) -> list[tuple[str, str]]:
    return [
        (f.scheduled_for.astimezone(ZONE).strftime("%m-%d %H:%M"), f.entry)
        for f in fired
        if f.entry != "pump"
    ]


def test_the_calendar_fires_at_its_local_times() -> None:
    broker = _broker()
    scheduler = Scheduler(broker, MemoryLease(), zone=ZONE)
    fired: list[Fired] = []
    moment = _local(date(2026, 3, 30), 0, 0)  # Monday
    while moment < _local(date(2026, 4, 2), 0, 0):
        fired.extend(scheduler.tick(moment))
        moment += timedelta(minutes=1)
    assert _calendar_firings(fired) == [
        ("03-30 00:10", "recur"),
        ("03-30 08:30", "sweep-morning"),
        ("03-30 09:00", "bulletin-weekly"),
        ("03-30 14:00", "sweep-afternoon"),
        ("03-30 18:00", "bulletin-daily"),
        ("03-31 00:10", "recur"),
        ("03-31 08:30", "sweep-morning"),
        ("03-31 14:00", "sweep-afternoon"),
        ("03-31 18:00", "bulletin-daily"),
        ("04-01 00:10", "recur"),
        ("04-01 08:00", "spot-checks"),
        ("04-01 08:30", "sweep-morning"),
        ("04-01 09:00", "bulletin-monthly"),
        ("04-01 09:00", "bulletin-quarterly"),
        ("04-01 14:00", "sweep-afternoon"),
        ("04-01 18:00", "bulletin-daily"),
    ]
    by_entry = {f.entry: f for f in fired}
    assert (by_entry["bulletin-quarterly"].actor_name, by_entry["bulletin-quarterly"].args) == (
        "bulletin",
        ("quarterly",),
    )
    assert by_entry["spot-checks"].actor_name == "assign_spot_checks"
    # The pump every 5 s: once a minute when ticked once a minute.
    assert sum(f.entry == "pump" for f in fired) == 3 * 24 * 60
    # Every firing is a message on the broker, by actor name.
    assert broker.queues["default"].qsize() == len(fired)


def test_look_backs_fire_on_the_15th_and_a_first_start_catches_up_within_the_window() -> None:
    scheduler = Scheduler(_broker(), MemoryLease(), zone=ZONE)
    fired: list[Fired] = []
    moment = _local(date(2026, 4, 14), 8, 0)
    while moment < _local(date(2026, 4, 15), 10, 0):
        fired.extend(scheduler.tick(moment))
        moment += timedelta(minutes=5)
    assert _calendar_firings(fired) == [
        # Caught up on the first start, at 08:00: within their windows (12 hours, 2 days).
        ("04-14 00:10", "recur"),
        ("04-13 09:00", "bulletin-weekly"),
        ("04-14 08:30", "sweep-morning"),
        ("04-14 14:00", "sweep-afternoon"),
        ("04-14 18:00", "bulletin-daily"),
        ("04-15 00:10", "recur"),
        ("04-15 08:30", "sweep-morning"),
        ("04-15 09:00", "look-backs"),
    ]


def test_a_missed_firing_fires_once_on_start_up_within_its_window() -> None:
    lease = MemoryLease()
    day = date(2026, 3, 3)
    Scheduler(_broker(), lease, zone=ZONE).tick(_local(day, 8, 0))  # up at 08:00, then down
    # Down from 08:00 to 10:00: the 08:30 sweep fires on start-up, once.
    restarted = Scheduler(_broker(), lease, zone=ZONE)
    assert _calendar_firings(restarted.tick(_local(day, 10, 0))) == [
        ("03-03 08:30", "sweep-morning")
    ]
    assert _calendar_firings(restarted.tick(_local(day, 10, 1))) == []
    # Restarted again at 10:05: the morning sweep was fired, so not again.
    again = Scheduler(_broker(), lease, zone=ZONE)
    assert _calendar_firings(again.tick(_local(day, 10, 5))) == []


def test_a_firing_missed_past_its_window_is_skipped() -> None:
    lease = MemoryLease()
    day = date(2026, 3, 3)
    Scheduler(_broker(), lease, zone=ZONE).tick(_local(day, 8, 0))
    # Down until 12:31: the 08:30 sweep is more than 4 hours late; 14:00 will come.
    late = Scheduler(_broker(), lease, zone=ZONE)
    assert _calendar_firings(late.tick(_local(day, 12, 31))) == []
    assert _calendar_firings(late.tick(_local(day, 14, 0, 1))) == [
        ("03-03 14:00", "sweep-afternoon")
    ]


def test_an_entry_whose_actor_is_not_declared_is_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = _broker()
    dramatiq.actor(actor_name="pump", broker=broker, queue_name="delivery")(lambda: None)
    scheduler = Scheduler(
        broker,
        MemoryLease(),
        zone=ZONE,
        entries=[e for e in CALENDAR if e.name in ("pump", "recur")],
    )
    fired = scheduler.tick(_local(date(2026, 3, 3), 0, 10))
    assert [(f.entry, f.actor_name) for f in fired] == [("pump", "pump")]
    assert broker.queues["delivery"].qsize() == 1
    assert "no actor 'recur' is declared" in caplog.text


def test_entries_are_checked_when_declared() -> None:
    with pytest.raises(ValueError):
        Entry("bad", "sweep", "FREQ=SOMETIMES")
    with pytest.raises(ValueError):
        Entry("both", "sweep", "FREQ=DAILY", every=timedelta(seconds=5))
    with pytest.raises(ValueError):
        Scheduler(_broker(), MemoryLease(), zone=ZONE, entries=[CALENDAR[0], CALENDAR[0]])


# --- the database lease (SQLite and PostgreSQL) ---------------------------------------------


def _names(fired: list[Fired]) -> list[str]:
    return [f.entry for f in fired]


def test_two_schedulers_on_one_database_fire_once_and_hand_over(
    engine: Engine, frozen_clock: clock.FrozenClock
) -> None:
    first = Scheduler(_broker(), DatabaseLease(engine, holder="first"), zone=ZONE)
    second = Scheduler(_broker(), DatabaseLease(engine, holder="second"), zone=ZONE)
    day = date(2026, 3, 3)
    moment = _local(day, 8, 29, 50)
    fired_first: list[str] = []
    fired_second: list[str] = []
    # Both tick every second for two minutes: only the first (it asked first) fires.
    for _ in range(120):
        fired_first += _names(first.tick(moment))
        fired_second += _names(second.tick(moment))
        moment += timedelta(seconds=1)
    assert fired_second == []
    assert fired_first.count("sweep-morning") == 1 and fired_first.count("pump") == 24
    # The first stops renewing (it hangs): the second takes over once the lease expires.
    taken_at = None
    for _ in range(60):
        moment += timedelta(seconds=1)
        if second.tick(moment):
            taken_at = moment
            break
    assert taken_at is not None
    with Session(engine) as session:
        lease = session.exec(select(Lease)).one()
        assert lease.holder == "second"
    # It does not fire again what the first fired (the marks are in the database).
    assert "sweep-morning" not in _names(second.tick(moment + timedelta(seconds=5)))
    # The first comes back: it lost the lease and fires nothing.
    assert first.tick(moment + timedelta(seconds=11)) == []
    # A clean stop hands the lease over at once.
    second.stop()
    assert _names(first.tick(moment + timedelta(seconds=20))) == ["pump"]


def test_start_scheduler_runs_the_calendar_in_a_thread_until_stopped(
    database_url: str, engine: Engine, frozen_clock: clock.FrozenClock
) -> None:
    broker = _broker()
    settings = load_settings(DATABASE_URL=database_url, REDIS_URL="", TIMEZONE="Asia/Shanghai")
    handle = start_scheduler(settings, broker, engine=engine)
    try:
        deadline = wall.monotonic() + 10
        while "default" not in broker.queues or broker.queues["default"].qsize() == 0:
            assert wall.monotonic() < deadline, "the scheduler enqueued nothing"
            wall.sleep(0.05)
    finally:
        handle.stop()
    assert not handle.thread.is_alive()
    with Session(engine) as session:
        lease = session.exec(select(Lease)).one()
        assert lease.expires_at.replace(tzinfo=UTC) < clock.now()  # released


# --- the Redis lease (the real server, a key prefix of its own) -----------------------------


@pytest.fixture
def redis_prefix() -> Iterator[tuple[redis.Redis, str]]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_missing("Redis", exc)
    prefix = f"closeout-test-{uuid.uuid4().hex[:12]}"
    yield client, prefix
    for key in client.scan_iter(match=f"{prefix}:*"):
        client.delete(key)
    client.close()


def test_two_schedulers_on_one_redis_fire_once_and_hand_over(
    redis_prefix: tuple[redis.Redis, str],
) -> None:
    client, prefix = redis_prefix
    ttl = timedelta(milliseconds=600)
    first = Scheduler(
        _broker(),
        RedisLease(client, prefix=prefix, holder="first", ttl=ttl),
        zone=ZONE,
    )
    second = Scheduler(
        _broker(),
        RedisLease(client, prefix=prefix, holder="second", ttl=ttl),
        zone=ZONE,
    )
    moment = _local(date(2026, 3, 3), 8, 29, 59)
    assert "sweep-morning" not in _names(first.tick(moment))
    assert second.tick(moment) == []
    moment += timedelta(seconds=1)
    assert _names(first.tick(moment)) == ["sweep-morning"]
    assert second.tick(moment) == []
    assert client.get(f"{prefix}:scheduler") == b"first"
    # The first stops renewing: once its key expires, the second takes over.
    wall.sleep(ttl.total_seconds() + 0.2)
    moment += timedelta(seconds=1)
    taken = second.tick(moment)
    assert _names(taken) == ["pump"]  # and not the 08:30 sweep the first fired
    assert client.get(f"{prefix}:scheduler") == b"second"
    assert first.tick(moment + timedelta(seconds=1)) == []
    # A clean stop hands it back at once.
    second.stop()
    assert _names(first.tick(moment + timedelta(seconds=5))) == ["pump"]
