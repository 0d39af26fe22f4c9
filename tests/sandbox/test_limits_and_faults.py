"""Flood limits (429 RetryAfter), refusals (403 Forbidden) and injected faults."""

from __future__ import annotations

import asyncio

import pytest
import telegram
from telegram.error import Forbidden, NetworkError, RetryAfter, TimedOut

from sandbox.botapi import BotApiServer, Limits, SandboxClient, User
from tests.sandbox.support import ALICE_ID, GROUP_ID, make_bot, seconds

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


async def test_a_second_message_within_a_second_raises_retry_after() -> None:
    async with BotApiServer(limits=Limits()) as server, make_bot(server) as bot:
        server.client.user(ALICE_ID, "张三")
        await bot.send_message(ALICE_ID, "one")

        with pytest.raises(RetryAfter) as refused:
            await bot.send_message(ALICE_ID, "two")

        assert seconds(refused.value.retry_after) == 1
        assert server.too_many_requests == 1
        await asyncio.sleep(1.05)
        await bot.send_message(ALICE_ID, "two")
        assert [m.text for m in server.client.messages(ALICE_ID)] == ["one", "two"]


async def test_a_group_takes_twenty_messages_a_minute() -> None:
    limits = Limits(per_chat_per_second=1000, per_chat_burst=1000)
    async with BotApiServer(limits=limits) as server, make_bot(server) as bot:
        server.client.group(GROUP_ID, "督查一组")
        for number in range(20):
            await bot.send_message(GROUP_ID, f"#{number}")

        with pytest.raises(RetryAfter) as refused:
            await bot.send_message(GROUP_ID, "#21")

        assert 58 <= seconds(refused.value.retry_after) <= 60


async def test_the_overall_limit_spans_all_chats() -> None:
    async with BotApiServer(limits=Limits(global_per_second=3)) as server, make_bot(server) as bot:
        for user_id in range(1, 5):
            server.client.user(user_id, f"user {user_id}")
        for user_id in range(1, 4):
            await bot.send_message(user_id, "notice")

        with pytest.raises(RetryAfter):
            await bot.send_message(4, "notice")


async def test_limits_scale_to_a_benchmark_rate() -> None:
    async with BotApiServer(limits=Limits(global_per_second=300)) as server:
        bot = telegram.Bot(
            server.token,
            base_url=server.base_url,
            request=telegram.request.HTTPXRequest(connection_pool_size=64),
        )
        async with bot:
            for user_id in range(1, 201):
                server.client.user(user_id, f"user {user_id}")

            await asyncio.gather(*(bot.send_message(user_id, "提醒") for user_id in range(1, 201)))

        assert server.too_many_requests == 0
        assert server.limiter.total_sends() == 200
        assert max(server.limiter.max_rate(user_id) for user_id in range(1, 201)) == 1


async def test_send_times_are_kept_even_with_limits_off(
    server: BotApiServer, bot: telegram.Bot, alice: User
) -> None:
    for number in range(3):
        await bot.send_message(ALICE_ID, f"#{number}")

    assert len(server.send_times(ALICE_ID)) == 3
    assert server.limiter.max_rate(ALICE_ID) == 3
    assert server.too_many_requests == 0


async def test_a_user_who_blocked_the_bot_is_forbidden(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    client.block(alice)

    with pytest.raises(Forbidden, match="(?i)bot was blocked by the user"):
        await bot.send_message(ALICE_ID, "#1 逾期提醒")

    client.send_text(alice, "/start")  # restarting the bot unblocks it
    await bot.send_message(ALICE_ID, "#1 逾期提醒")


async def test_the_bot_cannot_write_first(bot: telegram.Bot, client: SandboxClient) -> None:
    newcomer = client.user(201, "李四", started=False)

    with pytest.raises(Forbidden, match="(?i)can't initiate conversation"):
        await bot.send_message(newcomer.id, "欢迎")

    client.send_text(newcomer, "/start abc")
    await bot.send_message(newcomer.id, "欢迎")


async def test_a_bot_removed_from_a_group_is_forbidden_there(
    bot: telegram.Bot, client: SandboxClient
) -> None:
    client.group(GROUP_ID, "督查一组")
    client.remove_bot(GROUP_ID)

    with pytest.raises(Forbidden, match="(?i)kicked from the group chat"):
        await bot.send_message(GROUP_ID, "周报")


@pytest.mark.parametrize("status", [500, 502])
async def test_injected_server_errors_raise_network_error_then_clear(
    server: BotApiServer, bot: telegram.Bot, client: SandboxClient, alice: User, status: int
) -> None:
    server.fail_next("sendMessage", status=status, count=2)

    for _ in range(2):
        with pytest.raises(NetworkError) as failed:
            await bot.send_message(ALICE_ID, "retry me")
        assert not isinstance(failed.value, TimedOut)
    await bot.send_message(ALICE_ID, "retry me")

    assert [m.text for m in client.messages(ALICE_ID)] == ["retry me"]
    assert server.calls["sendMessage"] == 3


async def test_an_injected_flood_error_carries_retry_after(
    server: BotApiServer, bot: telegram.Bot, alice: User
) -> None:
    server.fail_next("sendMessage", status=429, retry_after=7)

    with pytest.raises(RetryAfter) as refused:
        await bot.send_message(ALICE_ID, "x")

    assert seconds(refused.value.retry_after) == 7


async def test_a_slow_server_times_out_but_still_sends(
    server: BotApiServer, bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    server.delay("sendMessage", 0.5)

    with pytest.raises(TimedOut):
        await bot.send_message(ALICE_ID, "#3 提醒", read_timeout=0.1)

    sent = await client.wait_for(ALICE_ID, "#3 提醒", timeout=3)
    assert sent.plain_text == "#3 提醒"
    server.delay("sendMessage", 0)
