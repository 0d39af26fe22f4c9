"""The product's clock in the sandbox: the system's time, moved forward on request.

`closeout sandbox` hands a `SandboxClock` to `models.clock.set_clock`, so the
bot, the jobs and the ledger all ask it for "now". Unlike the tests'
`models.clock.FrozenClock` it keeps running: the delivery jobs wait on it
(a claim's lease, a 429's retry_after, the limiter's deferrals are all
`not_before` times compared with now), and a clock that stood still would
keep those rows waiting forever. Moving it only ever goes forward: the outbox,
the event chain and the scheduler's firings assume time does not go back.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def _system_now() -> datetime:
    return datetime.now(UTC)


class SandboxClock:
    """The system's time plus an offset that only grows.

    Parameters:
        start: the time to start at (aware); None or a past time starts at the
            system's time (a kept sandbox resumes where its clock was moved to).
        source: the system's clock (for tests).
    """

    def __init__(
        self,
        start: datetime | None = None,
        *,
        source: Callable[[], datetime] = _system_now,
    ) -> None:
        if start is not None and start.utcoffset() is None:
            raise ValueError("SandboxClock needs an aware datetime")
        self._source = source
        self.offset = timedelta(0)
        if start is not None:
            self.move_to(start)

    def __call__(self) -> datetime:
        """Now, aware, in UTC (what `models.clock.now()` returns)."""
        return self._source() + self.offset

    def unix(self) -> float:
        """Now in Unix seconds: the date of the messages the local Bot API server keeps."""
        return self().timestamp()

    def move_to(self, moment: datetime) -> datetime:
        """Make it `moment` now, unless that is in the past; returns now."""
        ahead = moment.astimezone(UTC) - self()
        if ahead > timedelta(0):
            self.offset += ahead
        return self()
