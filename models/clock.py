"""The one place the code asks for the time, so tests can move it.

Stored times are naive UTC; "today" is computed in the deployment's time zone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

_now: Callable[[], datetime] = lambda: datetime.now(UTC).replace(tzinfo=None)  # noqa: E731


def now() -> datetime:
    """The current time, naive UTC."""
    return _now()


def set_clock(source: Callable[[], datetime] | None) -> None:
    """Make `now()` ask `source` (naive UTC); None restores the system clock."""
    global _now
    _now = source or (lambda: datetime.now(UTC).replace(tzinfo=None))


class FrozenClock:
    """A clock that stands still until moved: for tests and the sandbox."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


def local(moment: datetime, zone: ZoneInfo) -> datetime:
    """A stored UTC time in the deployment's zone."""
    return moment.replace(tzinfo=UTC).astimezone(zone)


def today(zone: ZoneInfo) -> date:
    """Today's date in the deployment's zone."""
    return local(now(), zone).date()
