"""The delivery rules as plain functions (SPEC §5, §7): quiet hours, the digest,
urgent stages and the flood windows."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.delivery import (
    URGENT_STAGES,
    attachment_ids,
    bundleable,
    is_urgent,
    next_digest,
    quiet_until,
    release_time,
)
from models.tables import Notification
from settings import QuietHours
from tasks.limiter import MemoryLimiter, Rates, Slot, make_limiter

BEIJING = ZoneInfo("Asia/Shanghai")
NIGHT = QuietHours(time(22, 0), time(7, 30))


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """2026-03-`day` at hour:minute in Beijing, as the aware UTC moment the code uses."""
    return datetime(2026, 3, day, hour, minute, tzinfo=BEIJING).astimezone(UTC)


# -- quiet hours ---------------------------------------------------------------------------


def test_quiet_hours_at_23_00_end_tomorrow_morning() -> None:
    assert quiet_until(local(2, 23, 0), NIGHT, BEIJING) == local(3, 7, 30)


def test_quiet_hours_after_midnight_end_the_same_morning() -> None:
    assert quiet_until(local(3, 0, 15), NIGHT, BEIJING) == local(3, 7, 30)
    assert quiet_until(local(3, 7, 29), NIGHT, BEIJING) == local(3, 7, 30)


def test_the_quiet_window_starts_at_its_start_and_is_over_at_its_end() -> None:
    assert quiet_until(local(2, 22, 0), NIGHT, BEIJING) == local(3, 7, 30)
    assert quiet_until(local(2, 21, 59), NIGHT, BEIJING) is None
    assert quiet_until(local(3, 7, 30), NIGHT, BEIJING) is None


def test_a_quiet_window_within_one_day_ends_that_day() -> None:
    lunch = QuietHours(time(12, 0), time(13, 30))
    assert quiet_until(local(2, 12, 45), lunch, BEIJING) == local(2, 13, 30)
    assert quiet_until(local(2, 13, 30), lunch, BEIJING) is None


def test_no_quiet_hours_defer_nothing() -> None:
    assert quiet_until(local(2, 23, 0), None, BEIJING) is None


# -- the digest and urgency ------------------------------------------------------------------


def test_the_urgent_stages_are_the_escalations_rejections_and_unreachable() -> None:
    assert URGENT_STAGES == {"rejected", "escalate-1", "escalate-2", "unreachable"}
    assert is_urgent("escalate-2") and not is_urgent("remind-3") and not is_urgent("assigned")


def test_the_next_digest_is_today_at_18_00_until_then_and_tomorrow_after() -> None:
    assert next_digest(local(2, 9, 0), BEIJING) == local(2, 18, 0)
    assert next_digest(local(2, 18, 0), BEIJING) == local(2, 18, 0)
    assert next_digest(local(2, 18, 1), BEIJING) == local(3, 18, 0)


def _release(**values: object) -> datetime | None:
    defaults: dict[str, object] = {
        "stage": "remind-3",
        "created_at": local(2, 9, 0),
        "not_before": None,
        "digest": False,
        "now": local(2, 9, 0),
        "zone": BEIJING,
        "quiet": NIGHT,
    }
    defaults.update(values)
    return release_time(**defaults)  # type: ignore[arg-type]


def test_a_row_goes_at_once_in_the_day_for_a_member_without_digest() -> None:
    assert _release() is None


def test_a_digest_member_gets_non_urgent_stages_at_the_digest_hour() -> None:
    assert _release(digest=True) == local(2, 18, 0)
    # At the digest hour the morning's rows are due.
    assert _release(digest=True, now=local(2, 18, 0)) is None
    # A row owed after today's digest waits for tomorrow's.
    assert _release(digest=True, created_at=local(2, 18, 30), now=local(2, 18, 30)) == local(
        3, 18, 0
    )


def test_urgent_stages_are_never_held_for_the_digest() -> None:
    for stage in URGENT_STAGES:
        assert _release(stage=stage, digest=True) is None


def test_quiet_hours_defer_everything_even_urgent_stages() -> None:
    for stage in ("escalate-2", "rejected", "remind-1", "bulletin-daily"):
        assert _release(stage=stage, now=local(2, 23, 0)) == local(3, 7, 30)


def test_a_digest_hour_inside_quiet_hours_waits_for_their_end() -> None:
    evening = QuietHours(time(17, 0), time(19, 0))
    assert _release(digest=True, quiet=evening) == local(2, 19, 0)


def test_a_row_waits_for_its_own_not_before_and_then_for_quiet_hours() -> None:
    assert _release(not_before=local(2, 10, 0)) == local(2, 10, 0)
    # retry_after pushing a send into the night: it waits for the morning.
    assert _release(not_before=local(2, 22, 10), now=local(2, 21, 59)) == local(3, 7, 30)


def test_a_row_with_files_goes_alone() -> None:
    with_files = Notification(
        key="k",
        stage="bulletin-weekly",
        data=json.dumps({"attachments": [3, 4]}),
        created_at=local(2, 9),
    )
    plain = Notification(key="k2", stage="remind-3", data="{}", created_at=local(2, 9))
    assert attachment_ids(with_files) == [3, 4] and not bundleable(with_files)
    assert attachment_ids(plain) == [] and bundleable(plain)


# -- the flood windows -------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_telegram_s_limits_are_the_default_rates() -> None:
    rates = Rates()
    assert (rates.global_per_second, rates.chat_per_second, rates.group_per_minute) == (30, 1, 20)
    assert [window[0] for window in rates.windows(42)] == ["global", "chat:42"]
    assert [window[0] for window in rates.windows(-100)] == ["global", "chat:-100", "group:-100"]


def test_one_chat_gets_one_message_a_second() -> None:
    fake = FakeClock()
    limiter = MemoryLimiter(Rates(margin=0.0), clock=fake)
    assert limiter.try_acquire(7) == 0
    fake.now += 0.1
    assert limiter.try_acquire(7) == pytest.approx(0.9)
    assert limiter.try_acquire(8) == 0  # another chat is not held up
    fake.now += 0.9
    assert limiter.try_acquire(7) == 0


def test_the_overall_window_paces_thirty_a_second_evenly() -> None:
    fake = FakeClock()
    limiter = MemoryLimiter(Rates(margin=0.0), clock=fake)
    assert limiter.try_acquire(0) == 0
    # Not a burst of thirty: the next send waits a thirtieth of a second …
    assert limiter.try_acquire(1) == pytest.approx(1 / 30)
    sent = 1
    for chat in range(1, 200):
        fake.now += limiter.try_acquire(chat)
        assert limiter.try_acquire(chat) == 0
        sent += 1
        if fake.now - 1000.0 >= 1.0:
            break
    # … and over a second exactly thirty go, as the sliding window allows.
    assert sent == 31 and fake.now == pytest.approx(1001.0)


def test_a_group_gets_twenty_messages_a_minute() -> None:
    fake = FakeClock()
    limiter = MemoryLimiter(Rates(margin=0.0), clock=fake)
    for _ in range(20):
        assert limiter.try_acquire(-5) == 0
        fake.now += 1.0
    assert limiter.try_acquire(-5) == pytest.approx(40.0)


def test_a_refused_send_takes_no_slot_in_any_window() -> None:
    fake = FakeClock()
    limiter = MemoryLimiter(Rates(global_per_second=2, margin=0.0), clock=fake)
    assert limiter.try_acquire(1) == 0
    fake.now += 0.5
    assert limiter.try_acquire(1) > 0  # the chat's window is full …
    assert limiter.try_acquire(2) == 0  # … so the overall window still has its slot


def test_acquire_sleeps_a_short_wait_and_hands_a_long_one_back() -> None:
    fake = FakeClock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        fake.now += seconds

    limiter = MemoryLimiter(Rates(margin=0.0), clock=fake)
    assert limiter.acquire(-5, sleep=sleep) == 0
    # A chat's second is more than the default inline wait: handed back …
    assert limiter.acquire(-5, sleep=sleep) == pytest.approx(1.0) and slept == []
    # … unless the caller is willing to sleep that long.
    assert limiter.acquire(-5, max_wait=1.5, sleep=sleep) == 0 and slept == [pytest.approx(1.0)]
    for _ in range(18):
        fake.now += 1.0
        assert limiter.try_acquire(-5) == 0
    fake.now += 1.0
    assert limiter.acquire(-5, max_wait=1.5, sleep=sleep) > 30  # the minute's window: re-enqueue


def _wait(found: Slot | float) -> float:
    assert isinstance(found, Slot), f"not reserved: {found} s to wait"
    return found.wait


def test_reserved_slots_keep_the_overall_pace_when_their_threads_wake_late() -> None:
    fake = FakeClock()
    limiter = MemoryLimiter(Rates(margin=0.0), clock=fake)
    assert _wait(limiter.reserve(1, 0.5)) == 0.0
    assert _wait(limiter.reserve(2, 0.5)) == pytest.approx(1 / 30)
    # The first thread wakes 50 ms late: the next slot is still the one after the
    # last reserved (2/30 s after the first), not a thirtieth after waking.
    fake.now += 0.05
    assert fake.now + _wait(limiter.reserve(3, 0.5)) == pytest.approx(1000.0 + 2 / 30)


def test_a_sender_waits_its_turn_overall_but_hands_back_a_chat_s_second() -> None:
    fake = FakeClock()
    limiter = MemoryLimiter(Rates(margin=0.0), clock=fake)
    for chat in range(20):  # twenty senders queue: the last one's turn is 19/30 s away
        assert isinstance(limiter.reserve(chat, 0.5), Slot)
    assert _wait(limiter.reserve(20, 0.5)) == pytest.approx(20 / 30)
    assert limiter.reserve(0, 0.5) == pytest.approx(1.0)  # chat 0's second: handed back
    assert limiter.reserve(21, 0.5, max_queue=0.5) == pytest.approx(21 / 30)  # too far


def test_a_thread_that_wakes_late_does_not_send_in_its_stale_slot() -> None:
    fake = FakeClock()
    lateness = [0.05]

    def sleep(seconds: float) -> None:
        fake.now += seconds + lateness.pop(0)

    limiter = MemoryLimiter(Rates(margin=0.0), clock=fake)
    assert limiter.acquire(1, sleep=sleep) == 0  # at once, no sleep
    started = fake.now
    # Its slot was 1/30 s ahead; it woke 50 ms past it, so it gave the slot back
    # and took the next one, at once (the chat's window holds no stale slot).
    assert limiter.acquire(2, sleep=sleep) == 0 and lateness == []
    assert fake.now == pytest.approx(started + 1 / 30 + 0.05)
    assert limiter.peek(2) == pytest.approx(1.0)  # one send counted in the chat


def test_a_slot_further_ahead_than_the_caller_waits_is_not_reserved() -> None:
    fake = FakeClock()
    limiter = MemoryLimiter(Rates(margin=0.0), clock=fake)
    assert _wait(limiter.reserve(7, 0.5)) == 0.0
    assert limiter.reserve(7, 0.5) == pytest.approx(1.0)  # the chat's second: not taken
    assert _wait(limiter.reserve(8, 0.5)) == pytest.approx(1 / 30)  # so it took nothing


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([1, 2, 3, -5]), st.floats(0, 0.2), st.floats(0, 2)),
        max_size=120,
    )
)
def test_reserved_slots_never_crowd_a_window(sends: list[tuple[int, float, float]]) -> None:
    fake = FakeClock()
    rates = Rates(global_per_second=10, group_per_minute=3, margin=0.0)
    limiter = MemoryLimiter(rates, clock=fake)
    slots: list[tuple[float, int]] = []
    for chat, pause, max_wait in sends:
        fake.now += pause
        found = limiter.reserve(chat, max_wait)
        if isinstance(found, Slot):
            assert found.wait >= 0
            slots.append((fake.now + found.wait, chat))
        else:
            assert found > max_wait
    times = sorted(at for at, _ in slots)
    for start in times:  # at most 10 in any second overall, a tenth of a second apart
        assert sum(1 for at in times if start <= at < start + 1 - 1e-9) <= 10
    assert all(b - a >= 0.1 - 1e-9 for a, b in zip(times, times[1:], strict=False))
    for chat in (1, 2, 3, -5):
        mine = sorted(at for at, c in slots if c == chat)
        assert all(b - a >= 1 - 1e-9 for a, b in zip(mine, mine[1:], strict=False))
    group = sorted(at for at, c in slots if c == -5)
    for start in group:
        assert sum(1 for at in group if start <= at < start + 60 - 1e-9) <= 3


def test_peeking_says_the_wait_and_takes_nothing() -> None:
    fake = FakeClock()
    limiter = MemoryLimiter(Rates(margin=0.0), clock=fake)
    assert limiter.peek(7) == 0 and limiter.peek(7) == 0
    assert limiter.try_acquire(7) == 0
    assert limiter.peek(7) == pytest.approx(1.0)


@pytest.mark.parametrize("where", ["memory", "redis"])
def test_peeking_at_many_chats_says_each_one_s_wait_in_one_look(
    where: str, request: pytest.FixtureRequest
) -> None:
    if where == "memory":
        limiter = make_limiter(None, Rates(margin=0.0))
    else:
        redis_url, namespace = (request.getfixturevalue(n) for n in ("redis_url", "namespace"))
        limiter = make_limiter(redis_url, Rates(margin=0.0), namespace)
    try:
        assert limiter.try_acquire(7) == 0
        waits = limiter.peek_many([7, 8])
        assert waits == pytest.approx([limiter.peek(7), limiter.peek(8)], abs=0.01)
        # Chat 7's second; chat 8 waits only its turn overall, which a look leaves out.
        assert 0.9 < waits[0] <= 1.0 and waits[1] == 0
        assert limiter.peek_many([]) == []
    finally:
        limiter.close()


def test_redis_reserves_the_next_slots_of_the_overall_pace(redis_url: str, namespace: str) -> None:
    limiter = make_limiter(redis_url, Rates(global_per_second=10, margin=0.0), namespace)
    try:
        slots = [limiter.reserve(chat, 0.5) for chat in range(4)]
        # Back to back, each a tenth of a second after the one before (less
        # the few milliseconds the calls took).
        assert [round(_wait(slot), 1) for slot in slots] == [0.0, 0.1, 0.2, 0.3]
        assert limiter.reserve(9, 0.05, max_queue=0.05) == pytest.approx(0.4, abs=0.02)
        # A slot given back is free again for its chat (and counts no more).
        last = slots[-1]
        assert isinstance(last, Slot)
        limiter.release(last)
        assert _wait(limiter.reserve(3, 0.5)) == pytest.approx(0.3, abs=0.02)
    finally:
        limiter.close()


def test_the_redis_windows_let_no_two_threads_past_a_full_window(
    redis_url: str, namespace: str
) -> None:
    limiter = make_limiter(redis_url, Rates(global_per_second=1, margin=0.0), namespace)
    try:
        taken: dict[int, float] = {}
        lock = threading.Lock()

        def grab(chat: int) -> None:
            wait = limiter.try_acquire(chat)
            with lock:
                taken[chat] = wait

        threads = [threading.Thread(target=grab, args=(chat,)) for chat in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Forty at the same instant: the overall window (one a second, so that a
        # slow machine's pauses do not reopen it) paces them, one goes.
        [winner] = [chat for chat, wait in taken.items() if wait == 0]
        assert all(0 < wait <= 1.0 for chat, wait in taken.items() if chat != winner)
        assert limiter.peek(winner) > 0  # the chat that got it has its second to wait
        # Another process (another limiter on the same keys) sees the same windows.
        other = make_limiter(redis_url, Rates(global_per_second=1, margin=0.0), namespace)
        assert other.try_acquire(99) > 0
        other.close()
    finally:
        limiter.close()
