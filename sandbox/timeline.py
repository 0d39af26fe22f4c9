"""The sandbox's calendar: the deployment's schedule, fired in this process,
with a clock that can be moved forward.

`closeout run` keeps the calendar with `tasks.scheduler`: it enqueues each
entry's actor at its time and, after a pause, fires a missed entry only
within its catch-up window — right for a deployment (a daily bulletin is
not sent the next morning), wrong for a demo whose clock jumps a week: the
week's reminders, escalations and bulletins would never arrive. So the
sandbox keeps the same entries (`tasks.scheduler.CALENDAR`) but fires them
itself, one at a time and in time order: every second for the time that
passed, and, when the clock is moved, for every firing in the skipped time
— the clock is set to each firing's time, the actor runs there, and the
deliveries it owes are let out (`settle`) before time moves on. So a jump of
a week is a week played fast: the 08:30 and 14:00 sweeps of each day, the
18:00 daily bulletins, Monday's weekly report, the 1st's spot checks.

Interval entries (the pump) are not replayed; the timeline pumps itself
every PUMP_INTERVAL and once after each move.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from models.workdays import WorkCalendar
from sandbox.clock import SandboxClock
from tasks.scheduler import CALENDAR, Entry

log = logging.getLogger(__name__)

#: Seconds between two looks at the calendar while time just passes.
TICK_SECONDS = 1.0  # seconds
#: Seconds between two pumps (as `closeout run`'s pump loop).
PUMP_SECONDS = 5.0  # seconds
#: Furthest the clock may be moved in one go (each day skipped is replayed).
MAX_JUMP = timedelta(days=100)
#: The steps the page offers.
STEPS = ("day", "workday", "week")
#: Where a move lands on its day (local time): the start of a working day, just
#: after the morning sweep (08:30), so its reminders and escalations are there.
LANDING = time(9, 0)


class ClockRefused(ValueError):
    """The clock cannot be moved so: the reason is one sentence for the page."""


class Busy(RuntimeError):
    """The clock is being moved already."""


@dataclass(frozen=True)
class Firing:
    """One calendar entry at one of its times (aware UTC)."""

    entry: Entry
    at: datetime


@dataclass(frozen=True)
class Fired:
    """What a firing did: its actor ran, or failed with `error`."""

    name: str
    actor: str
    args: tuple[Any, ...]
    at: datetime
    error: str | None = None

    def as_dict(self, zone: ZoneInfo) -> dict[str, Any]:
        return {
            "name": self.name,
            "actor": self.actor,
            "args": list(self.args),
            "at": self.at.astimezone(zone).isoformat(timespec="minutes"),
            "error": self.error,
        }


@dataclass(frozen=True)
class Moved:
    """A move of the clock: from when to when, and what the calendar fired between."""

    start: datetime
    end: datetime
    fired: list[Fired] = field(default_factory=list)

    def as_dict(self, zone: ZoneInfo) -> dict[str, Any]:
        return {
            "from": self.start.astimezone(zone).isoformat(timespec="minutes"),
            "to": self.end.astimezone(zone).isoformat(timespec="minutes"),
            "fired": [fired.as_dict(zone) for fired in self.fired],
        }


def firings_between(
    start: datetime, end: datetime, zone: ZoneInfo, entries: Sequence[Entry] = CALENDAR
) -> list[Firing]:
    """Every firing of the rule entries after `start` up to and including `end`, in time
    order (entries at the same time in calendar order); interval entries are left out."""
    if end <= start:
        return []
    local_start = start.astimezone(zone).replace(tzinfo=None)
    local_end = end.astimezone(zone).replace(tzinfo=None)
    found: list[tuple[datetime, int, Entry]] = []
    for position, entry in enumerate(entries):
        if entry.rule is None:
            continue
        for moment in entry.expand(local_start).between(local_start, local_end, inc=True):
            at = moment.replace(tzinfo=zone).astimezone(UTC)
            if start < at <= end:
                found.append((at, position, entry))
    return [Firing(entry, at) for at, _, entry in sorted(found, key=lambda f: (f[0], f[1]))]


def step_target(now: datetime, step: str, zone: ZoneInfo, calendar: WorkCalendar) -> datetime:
    """Where a step of the page takes the clock: LANDING of the next day, of the
    next working day, or of the same weekday next week.

    Raises ClockRefused for an unknown step.
    """
    local = now.astimezone(zone)
    if step == "day":
        day = local.date() + timedelta(days=1)
    elif step == "week":
        day = local.date() + timedelta(days=7)
    elif step == "workday":
        day = calendar.add_workdays(local.date(), 1)
    else:
        raise ClockRefused(f"unknown step {step!r} (known: {', '.join(STEPS)})")
    return landing(day, zone)


def date_target(now: datetime, day: date, zone: ZoneInfo) -> datetime:
    """LANDING on `day`.

    Raises ClockRefused when `day` is not after today, or further than MAX_JUMP.
    """
    today = now.astimezone(zone).date()
    if day <= today:
        raise ClockRefused(f"{day.isoformat()} is not after today ({today.isoformat()})")
    if day - today > MAX_JUMP:
        raise ClockRefused(f"at most {MAX_JUMP.days} days ahead in one move")
    return landing(day, zone)


def landing(day: date, zone: ZoneInfo) -> datetime:
    """LANDING on `day` in `zone`, as aware UTC."""
    return datetime.combine(day, LANDING, tzinfo=zone).astimezone(UTC)


class Timeline:
    """Fires the calendar in this process and moves the clock on request.

    Parameters:
        clock: the product's clock (also given to models.clock.set_clock).
        zone: the deployment's TIMEZONE.
        fire: runs an entry's actor now, in this thread (raises on failure).
        settle: waits (bounded) until the deliveries owed so far are sent.
        pump: enqueues the outbox rows no job is carrying.
        calendar: the working-day calendar (for "+1 working day").
        on_moved: told the new time after each move (to remember it).
        entries: the calendar (default: the deployment's).
    """

    def __init__(
        self,
        clock: SandboxClock,
        zone: ZoneInfo,
        *,
        fire: Callable[[Entry], None],
        settle: Callable[[], None],
        pump: Callable[[], None],
        calendar: Callable[[], WorkCalendar],
        on_moved: Callable[[datetime], None] | None = None,
        entries: Sequence[Entry] = CALENDAR,
    ) -> None:
        self.clock = clock
        self.zone = zone
        self.entries = tuple(entries)
        self._fire = fire
        self._settle = settle
        self._pump = pump
        self._calendar = calendar
        self._on_moved = on_moved
        #: The calendar has fired everything due up to here.
        self.last = clock()
        self._lock = threading.Lock()  # one round or move at a time
        self._flag = threading.Lock()  # guards `moving`
        self.moving = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the running calendar -------------------------------------------------------------

    def start(self) -> None:
        """Fire the calendar as time passes, and pump, in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="sandbox-timeline", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """End the thread (after the round or move in progress)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        next_pump = 0.0
        elapsed = 0.0
        while not self._stopping.wait(TICK_SECONDS):
            elapsed += TICK_SECONDS
            try:
                with self._lock:
                    self._fire_until(self.clock())
                    if elapsed >= next_pump:
                        self._pump()
                        next_pump = elapsed + PUMP_SECONDS
            except Exception:  # noqa: BLE001 - the calendar must outlive one bad round
                log.exception("sandbox: a round of the calendar failed")

    def _fire_until(self, end: datetime) -> list[Fired]:
        # Every firing in (last, end], each at its own time, and what it owed sent
        # then (a bulletin's rows wait for the pump); then the clock is at `end`.
        done = []
        for firing in firings_between(self.last, end, self.zone, self.entries):
            self.clock.move_to(firing.at)
            done.append(self._run_entry(firing.entry, firing.at))
            self.last = firing.at
            self._pump()
            self._settle()
        self.clock.move_to(end)
        self.last = max(self.last, end)
        return done

    def _run_entry(self, entry: Entry, at: datetime) -> Fired:
        local = at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")
        log.info("sandbox: %s %s → %s%s", local, entry.name, entry.actor_name, entry.args or "")
        try:
            self._fire(entry)
        except Exception as exc:  # noqa: BLE001 - the page shows it; the next firing runs
            log.exception("sandbox: %s failed", entry.name)
            return Fired(entry.name, entry.actor_name, entry.args, at, repr(exc))
        return Fired(entry.name, entry.actor_name, entry.args, at)

    def run_now(self, actor_name: str) -> Fired:
        """Run the first entry of `actor_name` now (e.g. the morning's sweep on start).

        Raises KeyError when the calendar has no such entry.
        """
        entry = next(e for e in self.entries if e.actor_name == actor_name)
        with self._lock:
            fired = self._run_entry(entry, self.clock())
            self._settle()
        return fired

    # -- moving the clock -----------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The clock as the page shows it."""
        now = self.clock().astimezone(self.zone)
        return {
            "now": now.isoformat(timespec="seconds"),
            "date": now.date().isoformat(),
            "time": now.strftime("%H:%M"),
            "weekday": now.weekday(),
            "workday": self._calendar().is_workday(now.date()),
            "zone": self.zone.key,
            "moving": self.moving,
        }

    def advance(self, *, by: str | None = None, to: date | None = None) -> Moved:
        """Move the clock by a step (`day`, `workday`, `week`) or to a later date (at
        LANDING), firing everything the calendar would have fired in between.

        Blocks until done. Raises ClockRefused for a bad step or date, Busy
        while another move runs.
        """
        if (by is None) == (to is None):
            raise ClockRefused("give either a step or a date")
        with self._flag:
            if self.moving:
                raise Busy("the clock is being moved")
            self.moving = True
        try:
            with self._lock:
                start = self.clock()
                if by is not None:
                    target = step_target(start, by, self.zone, self._calendar())
                else:
                    assert to is not None
                    target = date_target(start, to, self.zone)
                self._settle()  # what is on its way leaves at the time it was owed
                fired = self._fire_until(target)
                self._pump()
                self._settle()
                end = self.clock()
            log.info(
                "sandbox: the clock moved from %s to %s; %d firing(s)",
                start.astimezone(self.zone).isoformat(timespec="minutes"),
                end.astimezone(self.zone).isoformat(timespec="minutes"),
                len(fired),
            )
            if self._on_moved is not None:
                self._on_moved(end)
            return Moved(start, end, fired)
        finally:
            with self._flag:
                self.moving = False
