"""The shared limiter: Telegram's flood limits, kept by every sender together.

Telegram allows about 30 messages a second overall, one a second in a chat and
20 a minute in a group (negative chat ids), and answers 429 past them. Each
limit is a sliding window (at most `limit` sends within any `span` seconds),
as Telegram and the local Bot API server count them.

With REDIS_URL the windows are sorted sets in Redis, checked and taken in one
Lua script (atomic, with Redis's own clock), so every worker thread of every
process on every host shares them and together they cannot exceed a window.
Without Redis (`closeout run`, one process) they live in memory behind a lock.

`try_acquire(chat_id)` takes a slot in all three windows or none, and says how
long to wait otherwise; `peek(chat_id)` only says how long. `acquire(chat_id,
max_wait=…)` sleeps for short waits (a busy overall window frees a slot within
milliseconds) and gives up past `max_wait`, returning the wait: the delivery
job then puts the message back on the queue with that delay instead of holding
a worker thread for a chat's second or a group's minute. The job peeks before
it claims and renders, and takes the slot right before the Bot API call.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: Telegram's overall limit for one bot.
GLOBAL_PER_SECOND = 30  # messages per second
#: Telegram's limit in one chat.
CHAT_PER_SECOND = 1.0  # messages per second
#: Telegram's limit in one group chat.
GROUP_PER_MINUTE = 20  # messages per minute
#: Added to every window's span, so that the varying time between taking a slot
#: and Telegram receiving the call (threads, the GIL, the network) cannot make
#: two sends look closer together to Telegram than they were here.
WINDOW_MARGIN = 0.03  # seconds
#: Longest `acquire` sleeps in the calling thread before handing the wait back.
#: A busy overall window frees a slot within milliseconds; a chat's second (or a
#: group's minute) is waited out on the queue, so the thread serves other chats.
MAX_INLINE_WAIT = 0.5  # seconds
#: Redis keys of the windows outlive their span by this much.
KEY_TTL_SLACK = 1000  # ms
#: Prefix of the limiter's Redis keys (after the deployment's namespace).
KEY_PREFIX = "limiter"


@dataclass(frozen=True)
class Rates:
    """How fast the bot may send; Telegram's limits unless a benchmark or a
    self-hosted Bot API server says otherwise."""

    global_per_second: int = GLOBAL_PER_SECOND
    chat_per_second: float = CHAT_PER_SECOND
    group_per_minute: int = GROUP_PER_MINUTE
    margin: float = WINDOW_MARGIN

    def windows(self, chat_id: int) -> list[tuple[str, int, float, float]]:
        """(name, limit, span, gap) of each window a send to `chat_id` takes:
        at most `limit` sends in any `span` seconds, at least `gap` seconds apart.

        The overall window is also paced (gap = span / limit): at full speed it
        lets as many through, but evenly, not in bursts of `limit` that leave
        threads queueing for the CPU between taking a slot and sending — the
        delay that would make sends look closer together to Telegram.
        """
        overall = 1.0 + self.margin
        windows = [
            ("global", self.global_per_second, overall, overall / self.global_per_second),
            (f"chat:{chat_id}", 1, 1.0 / self.chat_per_second + self.margin, 0.0),
        ]
        if chat_id < 0:
            windows.append((f"group:{chat_id}", self.group_per_minute, 60.0 + self.margin, 0.0))
        return windows


class Limiter:
    """Sliding windows overall, per chat and per group; see the module's docstring."""

    rates: Rates

    def try_acquire(self, chat_id: int) -> float:
        """Take one send to `chat_id` in every window and return 0.0, or take
        nothing and return the seconds until all the windows allow one."""
        raise NotImplementedError

    def peek(self, chat_id: int) -> float:
        """The seconds until all the windows would allow a send to `chat_id`
        (0.0: now), taking nothing: a cheap look before preparing a message."""
        raise NotImplementedError

    def peek_many(self, chat_ids: Sequence[int]) -> list[float]:
        """`peek` of several chats, in order (one round trip to Redis)."""
        return [self.peek(chat_id) for chat_id in chat_ids]

    def acquire(
        self,
        chat_id: int,
        *,
        max_wait: float = MAX_INLINE_WAIT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> float:
        """Wait (sleeping, at most `max_wait` seconds in all) for one send to `chat_id`.

        Returns:
            0.0 when the send was counted and may go now; otherwise the seconds
            still to wait (nothing counted) — the caller re-enqueues with that delay.
        """
        deadline = time.monotonic() + max_wait
        while True:
            wait = self.try_acquire(chat_id)
            if wait <= 0:
                return 0.0
            remaining = deadline - time.monotonic()
            if wait > remaining:
                return wait
            sleep(wait)

    def close(self) -> None:
        """Release connections, if any."""


class _Window:
    # At most `limit` events within any `span` seconds (as the Bot API server
    # counts), at least `gap` seconds apart.
    def __init__(self, limit: int, span: float, gap: float = 0.0) -> None:
        self.limit = limit
        self.span = span
        self.gap = gap
        self.events: deque[float] = deque()

    def wait_needed(self, now: float) -> float:
        while self.events and self.events[0] <= now - self.span:
            self.events.popleft()
        wait = 0.0
        if self.events and self.gap:
            wait = max(wait, self.events[-1] + self.gap - now)
        if len(self.events) >= self.limit:
            wait = max(wait, self.events[len(self.events) - self.limit] + self.span - now)
        return wait


class MemoryLimiter(Limiter):
    """The windows in this process's memory, for one process (`closeout run`).

    Thread-safe; chats' windows are forgotten once empty.
    """

    def __init__(self, rates: Rates | None = None, clock: Callable[[], float] = time.monotonic):
        self.rates = rates or Rates()
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}

    def try_acquire(self, chat_id: int) -> float:
        return self._look(chat_id, take=True)

    def peek(self, chat_id: int) -> float:
        return self._look(chat_id, take=False)

    def _look(self, chat_id: int, *, take: bool) -> float:
        with self._lock:
            now = self._clock()
            windows = [self._window(*window) for window in self.rates.windows(chat_id)]
            wait = max(window.wait_needed(now) for window in windows)
            if wait > 0 or not take:
                return wait
            for window in windows:
                window.events.append(now)
            self._forget_idle(now)
            return 0.0

    def _window(self, name: str, limit: int, span: float, gap: float) -> _Window:
        window = self._windows.get(name)
        if window is None:
            window = self._windows[name] = _Window(limit, span, gap)
        return window

    def _forget_idle(self, now: float) -> None:
        # Keep memory bounded by the chats sent to within the last minute.
        if len(self._windows) < 4096:
            return
        for name in [
            name
            for name, window in self._windows.items()
            if not window.events or window.events[-1] <= now - window.span
        ]:
            del self._windows[name]


# KEYS: the windows' sorted sets. ARGV: limit, span and gap (µs) per key, then
# the keys' expiry slack (ms), then a unique member for this send, or "" to only
# look. Redis's own clock, so hosts' clocks do not matter. Returns 0 when the
# send was counted in every window (or, looking, would be), else the wait in µs.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 * i - 2])
  local span = tonumber(ARGV[3 * i - 1])
  local gap = tonumber(ARGV[3 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - span)
  local count = redis.call('ZCARD', key)
  if gap > 0 and count > 0 then
    local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    local needed = tonumber(last[2]) + gap - now
    if needed > wait then wait = needed end
  end
  if count >= limit then
    local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    local needed = tonumber(oldest[2]) + span - now
    if needed > wait then wait = needed end
  end
end
local member = ARGV[#ARGV]
if wait > 0 or member == '' then return wait end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, member)
  local ttl = math.ceil(tonumber(ARGV[3 * i - 1]) / 1000) + tonumber(ARGV[#ARGV - 1])
  redis.call('PEXPIRE', key, ttl)
end
return 0
"""


class RedisLimiter(Limiter):
    """The windows in Redis, shared by every worker on every host.

    Parameters:
        client: a redis-py client.
        namespace: prefix of the keys (the deployment's, as the broker's).
    """

    def __init__(self, client: Any, rates: Rates | None = None, namespace: str = "closeout"):
        self.rates = rates or Rates()
        self.client = client
        self.prefix = f"{namespace}:{KEY_PREFIX}:"
        self._script = client.register_script(_ACQUIRE)

    def try_acquire(self, chat_id: int) -> float:
        return self._look(chat_id, uuid.uuid4().hex)

    def peek(self, chat_id: int) -> float:
        return self._look(chat_id, "")

    def peek_many(self, chat_ids: Sequence[int]) -> list[float]:
        if not chat_ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for chat_id in chat_ids:
            self._script(*self._arguments(chat_id, ""), client=pipe)
        return [int(wait) / 1_000_000 for wait in pipe.execute()]

    def _look(self, chat_id: int, member: str) -> float:
        return int(self._script(*self._arguments(chat_id, member))) / 1_000_000

    def _arguments(self, chat_id: int, member: str) -> tuple[list[str], list[Any]]:
        # The script's KEYS and ARGV for a send to `chat_id` (member "": a look).
        windows = self.rates.windows(chat_id)
        keys = [self.prefix + name for name, _, _, _ in windows]
        args: list[Any] = []
        for _, limit, span, gap in windows:
            args += [limit, int(span * 1_000_000), int(gap * 1_000_000)]
        args += [KEY_TTL_SLACK, member]
        return keys, args

    def close(self) -> None:
        self.client.close()


def make_limiter(
    redis_url: str | None, rates: Rates | None = None, namespace: str = "closeout"
) -> Limiter:
    """The limiter for this deployment: in Redis when `redis_url` is set, else in memory."""
    if not redis_url:
        return MemoryLimiter(rates)
    import redis

    return RedisLimiter(redis.Redis.from_url(redis_url), rates, namespace)
