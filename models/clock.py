"""The one place the code asks for the time, so tests can move it.

Times are aware datetimes in UTC (as SQLModel stores them); "today" is
computed in the deployment's time zone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo


def _system_now() -> datetime:
    return datetime.now(UTC)


_now: Callable[[], datetime] = _system_now


def now() -> datetime:
    """The current time, aware, in UTC."""
    return _now()


def set_clock(source: Callable[[], datetime] | None) -> None:
    """Make `now()` ask `source` (aware UTC datetimes); None restores the system clock."""
    global _now
    _now = source or _system_now


class FrozenClock:
    """A clock that stands still until moved: for tests and the sandbox."""

    def __init__(self, start: datetime) -> None:
        if start.utcoffset() is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self.current = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


def local(moment: datetime, zone: ZoneInfo) -> datetime:
    """A stored time in the deployment's zone."""
    return moment.astimezone(zone)


def today(zone: ZoneInfo) -> date:
    """Today's date in the deployment's zone."""
    return local(now(), zone).date()
