"""Telegram's flood limits on sending, as sliding windows.

Telegram allows about 30 messages a second overall, one a second in a chat and
20 a minute in a group, and answers 429 with `retry_after` (whole seconds) when
a bot goes faster. The limiter applies these to the sending methods and keeps
what a benchmark needs: how many 429s it answered and when each chat was sent to.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.botapi.errors import too_many_requests

#: Window of the overall and per-chat limits.
SECOND = 1.0  # seconds
#: Window of the per-group limit.
MINUTE = 60.0  # seconds


@dataclass(frozen=True)
class Limits:
    """How fast the bot may send.

    `per_chat_burst` messages may go to one chat within `per_chat_burst /
    per_chat_per_second` seconds; the default 1 is the strict one-a-second.
    """

    global_per_second: int = 30
    per_chat_per_second: float = 1
    per_group_per_minute: int = 20
    per_chat_burst: int = 1
    enabled: bool = True


class _Window:
    # At most `limit` events within any `span` seconds.
    def __init__(self, limit: float, span: float) -> None:
        self.limit = limit
        self.span = span
        self.events: deque[float] = deque()

    def wait_needed(self, now: float) -> float:
        # Seconds until one more event fits; 0 if it fits now.
        while self.events and self.events[0] <= now - self.span:
            self.events.popleft()
        if len(self.events) < self.limit:
            return 0.0
        index = len(self.events) - int(self.limit)
        return self.events[index] + self.span - now


class RateLimiter:
    """Sliding windows overall, per chat and per group, with counters."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._overall = _Window(limits.global_per_second, SECOND)
        self._chats: dict[int, _Window] = {}
        self._groups: dict[int, _Window] = {}
        #: How many 429 answers were given.
        self.rejected = 0
        #: clock() of every accepted send, by chat id.
        self.send_times: dict[int, list[float]] = defaultdict(list)

    def acquire(self, chat_id: int, is_group: bool) -> None:
        """Count one send to `chat_id`, or refuse it.

        Raises:
            ApiError: 429 with `retry_after` when a window is full.
        """
        with self._lock:
            now = self._clock()
            if self.limits.enabled:
                windows = [self._overall, self._chat_window(chat_id)]
                if is_group:
                    windows.append(self._group_window(chat_id))
                wait = max(window.wait_needed(now) for window in windows)
                if wait > 0:
                    self.rejected += 1
                    raise too_many_requests(math.ceil(wait))
                for window in windows:
                    window.events.append(now)
            self.send_times[chat_id].append(now)

    def reconfigure(self, limits: Limits) -> None:
        """Apply new limits from now on (windows restart; counters are kept)."""
        with self._lock:
            self.limits = limits
            self._overall = _Window(limits.global_per_second, SECOND)
            self._chats.clear()
            self._groups.clear()

    def _chat_window(self, chat_id: int) -> _Window:
        if chat_id not in self._chats:
            burst = max(1, self.limits.per_chat_burst)
            self._chats[chat_id] = _Window(burst, burst / self.limits.per_chat_per_second)
        return self._chats[chat_id]

    def _group_window(self, chat_id: int) -> _Window:
        if chat_id not in self._groups:
            self._groups[chat_id] = _Window(self.limits.per_group_per_minute, MINUTE)
        return self._groups[chat_id]

    def total_sends(self) -> int:
        """How many sends were accepted, over all chats."""
        with self._lock:
            return sum(len(times) for times in self.send_times.values())

    def max_rate(self, chat_id: int, span: float = SECOND) -> int:
        """The most sends to `chat_id` seen within any `span` seconds."""
        with self._lock:
            times = list(self.send_times.get(chat_id, []))
        best = 0
        start = 0
        for end, moment in enumerate(times):
            while moment - times[start] >= span:
                start += 1
            best = max(best, end - start + 1)
        return best
