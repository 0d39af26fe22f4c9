"""The flood limiter's sliding windows, on a clock the test moves."""

from __future__ import annotations

import pytest

from sandbox.botapi.errors import ApiError
from sandbox.botapi.limits import Limits, RateLimiter


class FakeClock:
    """A monotonic clock that only moves when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refused_after(limiter: RateLimiter, chat_id: int, is_group: bool = False) -> int:
    with pytest.raises(ApiError) as refused:
        limiter.acquire(chat_id, is_group)
    assert refused.value.status == 429
    assert refused.value.parameters is not None
    return refused.value.parameters["retry_after"]


def test_one_message_a_second_per_chat_slides() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Limits(), clock)
    limiter.acquire(1, False)
    clock.now += 0.4

    assert refused_after(limiter, 1) == 1  # 0.6 s left, rounded up
    limiter.acquire(2, False)  # another chat is fine
    clock.now += 0.6
    limiter.acquire(1, False)
    assert limiter.rejected == 1
    assert limiter.send_times[1] == [1000.0, 1001.0]


def test_a_burst_allows_several_then_paces() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Limits(per_chat_burst=3), clock)
    for _ in range(3):
        limiter.acquire(1, False)

    assert refused_after(limiter, 1) == 3


def test_groups_take_twenty_a_minute() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Limits(per_chat_per_second=100, per_chat_burst=100), clock)
    for _ in range(20):
        limiter.acquire(-5, True)
        clock.now += 0.5

    assert refused_after(limiter, -5, is_group=True) == 50
    clock.now += 50
    limiter.acquire(-5, True)


def test_the_overall_limit_and_its_counters() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Limits(global_per_second=2), clock)
    limiter.acquire(1, False)
    limiter.acquire(2, False)

    assert refused_after(limiter, 3) == 1
    assert limiter.total_sends() == 2


def test_disabled_limits_still_count_sends() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Limits(enabled=False), clock)
    for _ in range(5):
        limiter.acquire(1, False)
        clock.now += 0.1

    assert limiter.rejected == 0
    assert limiter.max_rate(1) == 5
    assert limiter.max_rate(1, span=0.25) == 3


def test_limits_can_change_while_running() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Limits(), clock)
    limiter.acquire(1, False)

    limiter.reconfigure(Limits(per_chat_per_second=10, per_chat_burst=10))

    for _ in range(10):
        limiter.acquire(1, False)
    assert refused_after(limiter, 1) == 1
    assert limiter.total_sends() == 11
