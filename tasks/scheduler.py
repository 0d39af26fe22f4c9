"""The calendar: Dramatiq has no cron, so this enqueues the periodic actors (DESIGN "Scheduling").

Entries are named, each an interval or an RFC 5545 RRULE read in the
deployment's TIMEZONE (python-dateutil), and each names its actor by
*name*: the scheduler never imports an actor module, it only puts messages
on the broker for the workers to run. Every scheduled actor is idempotent
for its period, so a firing delivered twice, or repeated after a restart,
is harmless.

| entry | when (local) | actor |
|---|---|---|
| pump | every 5 s | `pump` (tasks.delivery: re-enqueue outbox rows still pending) |
| sweep-morning | daily 08:30 | `sweep` (tasks.followups) |
| sweep-afternoon | daily 14:00 | `sweep` again (see below) |
| recur | daily 00:10 | `recur` (tasks.followups) |
| bulletin-daily | daily 18:00 | `bulletin("daily")` (tasks.bulletins) |
| bulletin-weekly | Monday 09:00 | `bulletin("weekly")` |
| bulletin-monthly | 1st 09:00 | `bulletin("monthly")` |
| bulletin-quarterly | 1 Jan/Apr/Jul/Oct 09:00 | `bulletin("quarterly")` |
| spot-checks | 1st 08:00 | `assign_spot_checks` (tasks.spotchecks) |
| look-backs | 15th 09:00 | `assign_lookbacks` (tasks.spotchecks) |

The afternoon sweep chases the same day what changed during the morning —
an item reopened, rejected or denied an extension, a due date imported — and
redoes a morning run that failed; the outbox keys make it owe only what is new.

Only one scheduler fires at a time, however many are started: it fires only
while it holds a lease — a Redis key with an expiry (SET NX PX, renewed by its
holder) when REDIS_URL is set, else the `lease` table's row (taken with an
UPDATE … WHERE expires_at < now OR holder = me). A second scheduler waits and
takes over when the first stops renewing.

The last firing of each calendar entry is remembered beside the lease (a
Redis hash, or `meta` rows), so a scheduler that starts, or takes over,
fires an entry it finds missed — once, and only within the entry's catch-up
window (the 08:30 sweep still runs at 10:00 after a restart; a daily bulletin
is not sent the next morning) — and never fires one its predecessor did.

`Scheduler.tick(now)` does one round and returns what it enqueued: the tests
drive it with the frozen clock. `start_scheduler(settings, broker)` runs it
in a thread (for `closeout run`); `closeout scheduler` runs it in the
foreground.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

import dramatiq
from dateutil.rrule import rrule, rrulestr
from dramatiq.errors import ActorNotFound
from sqlalchemy import Engine, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel, col, select

from models import clock
from models.db import transaction
from models.tables import Lease, Meta

if TYPE_CHECKING:
    import redis

    from settings import Settings

log = logging.getLogger(__name__)

#: Seconds between two rounds of the running scheduler.
TICK_SECONDS = 1.0  # s
#: How long a lease holds without renewal; a second scheduler takes over after it.
#: The holder renews it every third of this (two renewals may fail), a waiting
#: scheduler asks for it every sixth.
LEASE_TTL = timedelta(seconds=30)
#: Name of the lease (the `lease` row, and the Redis key's suffix).
LEASE_NAME = "scheduler"
#: Prefix of the `meta` keys (and the Redis hash's suffix) remembering last firings.
FIRED_PREFIX = "scheduler.fired."
#: How far back an RRULE is expanded to find its latest occurrence: over a
#: quarter, so the quarterly entry's last firing is always found.
RULE_LOOKBACK = timedelta(days=100)
#: Catch-up windows: how late a missed firing may still fire.
SAME_DAY = timedelta(hours=4)
SAME_EVENING = timedelta(hours=5)
WITHIN_TWO_DAYS = timedelta(days=2)
#: Queue of an entry whose actor this process does not know (a bare broker).
DEFAULT_QUEUE = "default"


@dataclass(frozen=True)
class Entry:
    """One line of the calendar: which actor to enqueue, and when.

    Exactly one of `every` (an interval, not remembered across restarts) and
    `rule` (an RRULE in local time, e.g. "FREQ=DAILY;BYHOUR=8;BYMINUTE=30").
    A calendar firing missed by more than `catch_up` is skipped.
    """

    name: str
    actor_name: str
    rule: str | None = None
    every: timedelta | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    catch_up: timedelta = SAME_DAY

    def __post_init__(self) -> None:
        if (self.rule is None) == (self.every is None):
            raise ValueError(f"entry {self.name}: give either rule or every")
        if self.every is not None and self.every <= timedelta(0):
            raise ValueError(f"entry {self.name}: every must be positive")
        if self.rule is not None:
            self.expand(datetime(2026, 1, 1))  # fail fast on a bad rule

    def expand(self, start: datetime) -> rrule:
        """The rule as local naive datetimes from `start` (midnight: BYSECOND defaults to 0)."""
        assert self.rule is not None
        parsed = rrulestr(
            self.rule, dtstart=start.replace(hour=0, minute=0, second=0, microsecond=0)
        )
        if not isinstance(parsed, rrule):
            raise ValueError(f"entry {self.name}: one RRULE only")
        return parsed


#: The deployment's calendar (see the module docstring for why each is when it is).
CALENDAR: tuple[Entry, ...] = (
    Entry("pump", "pump", every=timedelta(seconds=5)),
    Entry("sweep-morning", "sweep", "FREQ=DAILY;BYHOUR=8;BYMINUTE=30"),
    Entry("sweep-afternoon", "sweep", "FREQ=DAILY;BYHOUR=14;BYMINUTE=0"),
    Entry("recur", "recur", "FREQ=DAILY;BYHOUR=0;BYMINUTE=10", catch_up=timedelta(hours=12)),
    Entry(
        "bulletin-daily",
        "bulletin",
        "FREQ=DAILY;BYHOUR=18;BYMINUTE=0",
        args=("daily",),
        catch_up=SAME_EVENING,
    ),
    Entry(
        "bulletin-weekly",
        "bulletin",
        "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0",
        args=("weekly",),
        catch_up=WITHIN_TWO_DAYS,
    ),
    Entry(
        "bulletin-monthly",
        "bulletin",
        "FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=9;BYMINUTE=0",
        args=("monthly",),
        catch_up=WITHIN_TWO_DAYS,
    ),
    Entry(
        "bulletin-quarterly",
        "bulletin",
        "FREQ=YEARLY;BYMONTH=1,4,7,10;BYMONTHDAY=1;BYHOUR=9;BYMINUTE=0",
        args=("quarterly",),
        catch_up=WITHIN_TWO_DAYS,
    ),
    Entry(
        "spot-checks",
        "assign_spot_checks",
        "FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=8;BYMINUTE=0",
        catch_up=WITHIN_TWO_DAYS,
    ),
    Entry(
        "look-backs",
        "assign_lookbacks",
        "FREQ=MONTHLY;BYMONTHDAY=15;BYHOUR=9;BYMINUTE=0",
        catch_up=WITHIN_TWO_DAYS,
    ),
)


@dataclass(frozen=True)
class Fired:
    """One message the scheduler put on the broker."""

    entry: str
    actor_name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    scheduled_for: datetime  # aware UTC: the calendar time, or now for an interval
    message_id: str


# --- leases -----------------------------------------------------------------


class LeaseStore(Protocol):
    """Where the lease and the last firings live; one scheduler holds it at a time."""

    holder: str
    ttl: timedelta

    def hold(self, now: datetime) -> bool:
        """Take the lease for `ttl`, or renew it if this holder has it; True when held."""
        ...

    def release(self) -> None:
        """Give the lease up now if this holder has it (a clean stop)."""
        ...

    def last_fired(self, entry: str) -> datetime | None: ...

    def mark_fired(self, entry: str, moment: datetime) -> None: ...


def new_holder() -> str:
    """A name for this scheduler: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _as_utc(moment: datetime) -> datetime:
    # Stored times come back naive (meaning UTC) from some backends.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class DatabaseLease:
    """The lease as the `lease` table's row; last firings as `meta` rows.

    Taken with UPDATE … WHERE name = N AND (expires_at < now OR holder = me),
    or by inserting the row when there is none (ON CONFLICT DO NOTHING), so
    two schedulers racing for it get it once. Times come from `models.clock`.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        holder: str | None = None,
        name: str = LEASE_NAME,
        ttl: timedelta = LEASE_TTL,
    ) -> None:
        self.engine = engine
        self.holder = holder or new_holder()
        self.name = name
        self.ttl = ttl

    def _insert(
        self, session: Session
    ) -> Callable[[type[SQLModel]], postgresql.Insert | sqlite.Insert]:
        return (
            postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        )

    def hold(self, now: datetime) -> bool:
        with transaction(self.engine) as session:
            taken = session.exec(
                update(Lease)
                .where(
                    col(Lease.name) == self.name,
                    or_(col(Lease.expires_at) < now, col(Lease.holder) == self.holder),
                )
                .values(holder=self.holder, expires_at=now + self.ttl)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount:
                return True
            inserted = session.execute(
                self._insert(session)(Lease)
                .values(name=self.name, holder=self.holder, expires_at=now + self.ttl)
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(col(Lease.name))
            )
            # RETURNING, not rowcount: psycopg reports -1 through the ORM session.
            return inserted.first() is not None

    def release(self) -> None:
        with transaction(self.engine) as session:
            session.execute(
                update(Lease)
                .where(col(Lease.name) == self.name, col(Lease.holder) == self.holder)
                .values(expires_at=datetime(1970, 1, 1, tzinfo=UTC))
                .execution_options(synchronize_session=False)
            )

    def last_fired(self, entry: str) -> datetime | None:
        with Session(self.engine) as session:
            value = session.exec(select(Meta.value).where(Meta.key == FIRED_PREFIX + entry)).first()
        return _as_utc(datetime.fromisoformat(value)) if value else None

    def mark_fired(self, entry: str, moment: datetime) -> None:
        with transaction(self.engine) as session:
            value = _as_utc(moment).isoformat()
            session.execute(
                self._insert(session)(Meta)
                .values(key=FIRED_PREFIX + entry, value=value)
                .on_conflict_do_update(index_elements=["key"], set_={"value": value})
            )


# Renew only our own key; take it over only if nobody holds it (SET NX PX).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLease:
    """The lease as a Redis key with an expiry (Redis's clock); last firings in a hash.

    Keys: `<prefix>:scheduler` (the lease) and `<prefix>:scheduler:fired`.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        holder: str | None = None,
        name: str = LEASE_NAME,
        ttl: timedelta = LEASE_TTL,
    ) -> None:
        self.client = client
        self.holder = holder or new_holder()
        self.key = f"{prefix}:{name}"
        self.fired_key = f"{prefix}:{name}:fired"
        self.ttl = ttl
        self.ttl_ms = int(ttl.total_seconds() * 1000)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def hold(self, now: datetime) -> bool:
        if self.client.set(self.key, self.holder, nx=True, px=self.ttl_ms):
            return True
        return bool(self._renew(keys=[self.key], args=[self.holder, self.ttl_ms]))

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.holder])

    def last_fired(self, entry: str) -> datetime | None:
        value = self.client.hget(self.fired_key, entry)
        if not value:
            return None
        text = value.decode() if isinstance(value, bytes) else str(value)
        return _as_utc(datetime.fromisoformat(text))

    def mark_fired(self, entry: str, moment: datetime) -> None:
        self.client.hset(self.fired_key, entry, _as_utc(moment).isoformat())


# --- the scheduler -----------------------------------------------------------


class Scheduler:
    """Enqueues the calendar's actors on `broker` while it holds `lease`."""

    def __init__(
        self,
        broker: dramatiq.Broker,
        lease: LeaseStore,
        *,
        zone: ZoneInfo,
        entries: Sequence[Entry] = CALENDAR,
    ) -> None:
        names = [entry.name for entry in entries]
        if len(set(names)) != len(names):
            raise ValueError("calendar entries need distinct names")
        self.broker = broker
        self.lease = lease
        self.zone = zone
        self.entries = tuple(entries)
        self.holding = False
        self._held_until: datetime | None = None
        self._ask_at: datetime | None = None
        self._next_interval: dict[str, datetime] = {}
        # Per calendar entry: (latest firing time seen, the one after it), aware UTC.
        self._window: dict[str, tuple[datetime | None, datetime]] = {}
        self._last: dict[str, datetime | None] = {}
        self._unknown: set[str] = set()

    # The lease is asked for every third of its TTL while held, every sixth while
    # waiting; between asks a held lease counts until it would expire.
    def _hold(self, now: datetime) -> bool:
        if self._ask_at is None or now >= self._ask_at:
            try:
                held = self.lease.hold(now)
            except Exception:  # noqa: BLE001 - a lost connection must not kill the loop
                log.exception("scheduler: could not reach the lease store")
                held = False
            ttl = self.lease.ttl
            if held:
                self._held_until = now + ttl
                self._ask_at = now + ttl / 3
            else:
                self._held_until = None
                self._ask_at = now + ttl / 6
            if held != self.holding:
                log.info(
                    "scheduler %s %s the lease",
                    self.lease.holder,
                    "holds" if held else "is waiting for",
                )
                if held:
                    # Another scheduler may have fired meanwhile: re-read its marks.
                    self._last.clear()
        self.holding = self._held_until is not None and now < self._held_until
        return self.holding

    def _latest(self, entry: Entry, now: datetime) -> datetime | None:
        """The entry's latest calendar time at or before `now` (aware UTC)."""
        cached = self._window.get(entry.name)
        if cached is not None and (cached[0] is None or cached[0] <= now) and now < cached[1]:
            return cached[0]
        local_now = now.astimezone(self.zone).replace(tzinfo=None)
        rule = entry.expand(local_now - RULE_LOOKBACK)
        before = rule.before(local_now, inc=True)
        after = rule.after(local_now)
        latest = before.replace(tzinfo=self.zone).astimezone(UTC) if before else None
        upcoming = after.replace(tzinfo=self.zone).astimezone(UTC) if after else now + RULE_LOOKBACK
        self._window[entry.name] = (latest, upcoming)
        return latest

    def _last_fired(self, entry: Entry) -> datetime | None:
        if entry.name not in self._last:
            self._last[entry.name] = self.lease.last_fired(entry.name)
        return self._last[entry.name]

    def _queue_of(self, entry: Entry) -> str | None:
        try:
            return self.broker.get_actor(entry.actor_name).queue_name
        except ActorNotFound:
            if not self.broker.get_declared_actors():
                return DEFAULT_QUEUE  # a bare broker: the workers know the actors
            if entry.actor_name not in self._unknown:
                self._unknown.add(entry.actor_name)
                log.warning(
                    "scheduler: no actor %r is declared; entry %s is skipped",
                    entry.actor_name,
                    entry.name,
                )
            return None

    def _enqueue(self, entry: Entry, scheduled_for: datetime) -> Fired | None:
        queue = self._queue_of(entry)
        if queue is None:
            return None
        if queue not in self.broker.get_declared_queues():
            self.broker.declare_queue(queue)
        message = self.broker.enqueue(
            dramatiq.Message(
                queue_name=queue,
                actor_name=entry.actor_name,
                args=entry.args,
                kwargs=dict(entry.kwargs),
                options={},
            )
        )
        return Fired(
            entry.name,
            entry.actor_name,
            entry.args,
            dict(entry.kwargs),
            scheduled_for,
            message.message_id,
        )

    def tick(self, now: datetime | None = None) -> list[Fired]:
        """One round at `now` (default `models.clock.now()`): enqueue what is due.

        Returns the messages enqueued, none when another scheduler holds the
        lease. A calendar entry fires once per calendar time, and a missed one
        (this scheduler was down or waiting) fires once if still within its
        catch-up window.
        """
        now = _as_utc(now or clock.now())
        if not self._hold(now):
            return []
        fired: list[Fired] = []
        for entry in self.entries:
            if entry.every is not None:
                upcoming = self._next_interval.get(entry.name)
                if upcoming is None or now >= upcoming:
                    self._next_interval[entry.name] = now + entry.every
                    done = self._enqueue(entry, now)
                    if done:
                        fired.append(done)
                continue
            latest = self._latest(entry, now)
            if latest is None:
                continue
            last = self._last_fired(entry)
            if last is not None and latest <= last:
                continue
            if now - latest > entry.catch_up:
                # A first start has no record: nothing was missed, only not yet run.
                log.log(
                    logging.INFO if last is None else logging.WARNING,
                    "scheduler: %s of %s was missed by more than %s; skipped",
                    entry.name,
                    latest.astimezone(self.zone).isoformat(),
                    entry.catch_up,
                )
                done = None
            else:
                done = self._enqueue(entry, latest)
            # Marked after the enqueue: a crash in between fires it again (the
            # actors are idempotent for their period), never not at all.
            self._last[entry.name] = latest
            self.lease.mark_fired(entry.name, latest)
            if done:
                log.info("scheduler: %s → %s%s", entry.name, entry.actor_name, entry.args or "")
                fired.append(done)
        return fired

    def stop(self) -> None:
        """Give the lease up, so a waiting scheduler takes over at once."""
        if self.holding:
            try:
                self.lease.release()
            except Exception:  # noqa: BLE001 - stopping must not fail
                log.exception("scheduler: could not release the lease")
        self.holding = False
        self._held_until = None
        self._ask_at = None


@dataclass
class RunningScheduler:
    """A scheduler ticking in a background thread; `stop()` ends it and frees the lease."""

    scheduler: Scheduler
    thread: threading.Thread
    stopping: threading.Event

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.thread.join(timeout)
        self.scheduler.stop()


def run_forever(
    scheduler: Scheduler, stopping: threading.Event, tick_seconds: float = TICK_SECONDS
) -> None:
    """Tick until `stopping` is set; a failed round is logged and the next one runs."""
    while not stopping.is_set():
        try:
            scheduler.tick()
        except Exception:  # noqa: BLE001 - the calendar must outlive one bad round
            log.exception("scheduler: a round failed")
        stopping.wait(tick_seconds)


def make_lease(
    settings: Settings, *, engine: Engine | None = None, namespace: str | None = None
) -> LeaseStore:
    """The lease the settings call for: Redis when REDIS_URL is set, else the database."""
    if settings.REDIS_URL:
        import redis

        from tasks.broker import DEFAULT_NAMESPACE

        return RedisLease(
            redis.Redis.from_url(settings.REDIS_URL), prefix=namespace or DEFAULT_NAMESPACE
        )
    if engine is None:
        from models.db import make_engine

        engine = make_engine(settings.DATABASE_URL)
    return DatabaseLease(engine)


def start_scheduler(
    settings: Settings,
    broker: dramatiq.Broker,
    *,
    engine: Engine | None = None,
    namespace: str | None = None,
    entries: Sequence[Entry] = CALENDAR,
) -> RunningScheduler:
    """Run the calendar in a daemon thread of this process (`closeout run`).

    Returns a handle; `handle.stop()` ends the thread and releases the lease.
    """
    scheduler = Scheduler(
        broker,
        make_lease(settings, engine=engine, namespace=namespace),
        zone=settings.zone,
        entries=entries,
    )
    stopping = threading.Event()
    thread = threading.Thread(
        target=run_forever, args=(scheduler, stopping), name="closeout-scheduler", daemon=True
    )
    thread.start()
    return RunningScheduler(scheduler, thread, stopping)
