"""Fault injection: make the next calls of a method fail, or answer slowly.

For tests of retries and time-outs: `fail_next("sendMessage", status=502,
count=2)` makes the next two sendMessage calls answer 502 (python-telegram-bot
raises NetworkError) without doing anything; `delay("sendMessage", 3)` makes
each call wait three seconds *and then do its work*, as a slow Telegram does —
a client that timed out may still have sent the message.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sandbox.botapi.errors import ApiError, status_error, too_many_requests

#: Method name meaning "every method".
ANY_METHOD = "*"


@dataclass
class _Failure:
    status: int
    count: int
    description: str | None
    retry_after: int | None


class Faults:
    """Pending failures and delays, by method name (case-insensitive)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, list[_Failure]] = {}
        self._delays: dict[str, float] = {}

    def fail_next(
        self,
        method: str,
        status: int = 500,
        count: int = 1,
        *,
        description: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Make the next `count` calls of `method` answer `status` without acting.

        `retry_after` (with status 429) adds `parameters.retry_after`.
        `method` may be "*" for any method.
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._failures.setdefault(method.lower(), []).append(
                _Failure(status, count, description, retry_after)
            )

    def delay(self, method: str, seconds: float) -> None:
        """Make every call of `method` wait `seconds` before acting (0 removes the delay)."""
        with self._lock:
            if seconds > 0:
                self._delays[method.lower()] = seconds
            else:
                self._delays.pop(method.lower(), None)

    def clear(self) -> None:
        """Forget every pending failure and delay."""
        with self._lock:
            self._failures.clear()
            self._delays.clear()

    def take_failure(self, method: str) -> ApiError | None:
        """The error the next call of `method` must answer, if one is pending."""
        with self._lock:
            for key in (method.lower(), ANY_METHOD):
                queue = self._failures.get(key)
                if not queue:
                    continue
                failure = queue[0]
                failure.count -= 1
                if failure.count == 0:
                    queue.pop(0)
                if failure.retry_after is not None:
                    return too_many_requests(failure.retry_after)
                return status_error(failure.status, failure.description)
        return None

    def delay_for(self, method: str) -> float:
        """Seconds a call of `method` must wait first."""
        with self._lock:
            return self._delays.get(method.lower(), self._delays.get(ANY_METHOD, 0.0))
