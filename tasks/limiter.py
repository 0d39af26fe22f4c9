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
long to wait otherwise; `peek(chat_id)` says how long the chat's own windows
hold it. `acquire(chat_id, max_wait=…)` reserves the first slot, waiting its
turn in the overall window (up to MAX_QUEUE) and at most `max_wait` for the
chat's own windows, and sleeps until it; past `max_wait` it takes nothing and
returns the wait: the delivery job then puts the message back on the queue
with that delay instead of holding a worker thread for a chat's second or a
group's minute. The job peeks before it claims and renders, and takes the slot
right before the Bot API call.

A reserved slot is the window's next one, counted from the last slot taken,
not from when its thread wakes: a thread that wakes late sends late, but the
slots after it stay where they were, so the threads together keep the overall
pace instead of losing a little of every slot to waking up (which held a
fan-out at about 80% of the overall rate when slots were taken on waking).
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
#: A thread that wakes this much later than its reserved slot does not send in
#: it (the sends reserved after it would crowd in behind) but takes another.
#: Within WINDOW_MARGIN, which must also cover the time from waking to Telegram:
#: a send later than the margin can make a window one too many. At 10 ms a busy
#: machine gave back so many slots that a 300/s fan-out lost 5-10% of its rate
#: (bench/fanout.py, README).
LATE_WAKE = 0.02  # seconds
#: Longest a sender waits its turn in the overall window. The turn comes after
#: every slot reserved before it, a gap apart (16 threads at 30 a second: about
#: half a second), so it is waited for, not handed back like a chat's second;
#: only past this (a great many senders) is it handed back.
MAX_QUEUE = 5.0  # seconds
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

        The overall window comes first. It is also paced (gap = span / limit):
        at full speed it lets as many through, but evenly, not in bursts of
        `limit` that leave threads queueing for the CPU between taking a slot
        and sending — the delay that would make sends look closer together to
        Telegram.
        """
        overall = 1.0 + self.margin
        windows = [
            ("global", self.global_per_second, overall, overall / self.global_per_second),
            (f"chat:{chat_id}", 1, 1.0 / self.chat_per_second + self.margin, 0.0),
        ]
        if chat_id < 0:
            windows.append((f"group:{chat_id}", self.group_per_minute, 60.0 + self.margin, 0.0))
        return windows


@dataclass(frozen=True)
class Slot:
    """A send reserved in every window of its chat."""

    chat_id: int
    #: Seconds from the reservation until the slot.
    wait: float
    #: What finds the slot again in the windows, to release it.
    key: Any


class Limiter:
    """Sliding windows overall, per chat and per group; see the module's docstring."""

    rates: Rates
    #: The clock `acquire` measures its waits and sleeps with.
    _clock: Callable[[], float] = staticmethod(time.monotonic)

    def try_acquire(self, chat_id: int) -> float:
        """Take one send to `chat_id` in every window and return 0.0, or take
        nothing and return the seconds until all the windows allow one."""
        found = self.reserve(chat_id, 0.0, max_queue=0.0)
        return 0.0 if isinstance(found, Slot) else found

    def reserve(
        self, chat_id: int, max_wait: float, *, max_queue: float = MAX_QUEUE
    ) -> Slot | float:
        """Take the first send to `chat_id` that every window allows, if the
        chat's own windows allow one within `max_wait` seconds and the overall
        window within `max_queue`; otherwise take nothing and return the seconds
        until one."""
        raise NotImplementedError

    def release(self, slot: Slot) -> None:
        """Give back a reserved slot that no message was sent in."""
        raise NotImplementedError

    def peek(self, chat_id: int) -> float:
        """The seconds until the chat's own windows (its second, a group's
        minute) would allow a send to `chat_id` (0.0: now), taking nothing: a
        cheap look before preparing a message. The overall window is not
        looked at: a sender waits its turn in it."""
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
        """Reserve the first send to `chat_id` within `max_wait` seconds and
        sleep until it.

        Returns:
            0.0 when the send was counted and may go now; otherwise the seconds
            still to wait (nothing counted) — the caller re-enqueues with that delay.
        """
        deadline = self._clock() + max_wait
        while True:
            asked = self._clock()
            slot = self.reserve(chat_id, max(0.0, deadline - asked))
            if not isinstance(slot, Slot):
                return slot
            if slot.wait > 0:
                sleep(slot.wait)
            if self._clock() - (asked + slot.wait) <= LATE_WAKE:
                return 0.0
            # Woke too late (the machine was busy): sent now, this message would
            # crowd the ones reserved after it. The slot is given back; another taken.
            self.release(slot)

    def close(self) -> None:
        """Release connections, if any."""


class _Window:
    # At most `limit` events within any `span` seconds (as the Bot API server
    # counts), at least `gap` seconds apart. Events are taken in time order and
    # may lie ahead of now (reserved slots).
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

    def reserve(
        self, chat_id: int, max_wait: float, *, max_queue: float = MAX_QUEUE
    ) -> Slot | float:
        return self._look(chat_id, (max_wait, max_queue))

    def peek(self, chat_id: int) -> float:
        found = self._look(chat_id, None)
        assert not isinstance(found, Slot)
        return found

    def release(self, slot: Slot) -> None:
        with self._lock:
            for name, *_ in self.rates.windows(slot.chat_id):
                window = self._windows.get(name)
                if window is not None and slot.key in window.events:
                    window.events.remove(slot.key)

    def _look(self, chat_id: int, limits: tuple[float, float] | None) -> Slot | float:
        # limits: (max_wait, max_queue); None: only look at the chat's windows.
        with self._lock:
            now = self._clock()
            windows = [self._window(*window) for window in self.rates.windows(chat_id)]
            overall, *own = (window.wait_needed(now) for window in windows)
            chat = max(0.0, *own)
            if limits is None:
                return chat
            wait = max(overall, chat)
            if chat > limits[0] or overall > limits[1]:
                return wait
            for window in windows:
                window.events.append(now + wait)
            self._forget_idle(now)
            return Slot(chat_id, wait, now + wait)

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


# KEYS: the windows' sorted sets, the overall one first. ARGV: limit, span and
# gap (µs) per key, then the keys' expiry slack (ms), the longest wait (µs) for
# the chat's own windows and for the overall one, then a unique member for this
# send, or "" to only look. Redis's own clock, so hosts' clocks do not matter.
# Each set holds its slots in time order (a reserved one may lie ahead), so a
# window's constraints come from its last slots. Returns {1, wait} when the
# send was counted at now + wait (µs), else {0, wait}; a look returns {0, the
# chat's own wait}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local overall = 0
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
  if i == 1 then
    overall = wait
    wait = 0
  end
end
local member = ARGV[#ARGV]
if member == '' then return {0, wait} end
local chat = wait
if overall > wait then wait = overall end
if chat > tonumber(ARGV[#ARGV - 2]) or overall > tonumber(ARGV[#ARGV - 1]) then
  return {0, wait}
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + wait, member)
  local ttl = math.ceil((tonumber(ARGV[3 * i - 1]) + wait) / 1000) + tonumber(ARGV[#ARGV - 3])
  redis.call('PEXPIRE', key, ttl)
end
return {1, wait}
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

    def reserve(
        self, chat_id: int, max_wait: float, *, max_queue: float = MAX_QUEUE
    ) -> Slot | float:
        member = uuid.uuid4().hex
        taken, wait = self._script(*self._arguments(chat_id, max_wait, max_queue, member))
        return Slot(chat_id, int(wait) / 1_000_000, member) if taken else int(wait) / 1_000_000

    def release(self, slot: Slot) -> None:
        pipe = self.client.pipeline(transaction=False)
        for name, *_ in self.rates.windows(slot.chat_id):
            pipe.zrem(self.prefix + name, slot.key)
        pipe.execute()

    def peek(self, chat_id: int) -> float:
        return int(self._script(*self._arguments(chat_id, 0.0, 0.0, ""))[1]) / 1_000_000

    def peek_many(self, chat_ids: Sequence[int]) -> list[float]:
        if not chat_ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for chat_id in chat_ids:
            self._script(*self._arguments(chat_id, 0.0, 0.0, ""), client=pipe)
        return [int(wait) / 1_000_000 for _, wait in pipe.execute()]

    def _arguments(
        self, chat_id: int, max_wait: float, max_queue: float, member: str
    ) -> tuple[list[str], list[Any]]:
        # The script's KEYS and ARGV for a send to `chat_id` (member "": a look).
        windows = self.rates.windows(chat_id)
        keys = [self.prefix + name for name, _, _, _ in windows]
        args: list[Any] = []
        for _, limit, span, gap in windows:
            args += [limit, int(span * 1_000_000), int(gap * 1_000_000)]
        args += [KEY_TTL_SLACK, int(max_wait * 1_000_000), int(max_queue * 1_000_000), member]
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
