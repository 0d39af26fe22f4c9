"""The bot's aiohttp request against the local Bot API server: PTB's errors, uploads."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import telegram
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from bot.transport import AiohttpRequest
from sandbox.botapi import BotApiServer, User
from tests.sandbox.support import ALICE_ID, seconds

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


@pytest.fixture
def alice(botapi: BotApiServer) -> User:
    return botapi.client.user(ALICE_ID, "张三")


def bot_on(server: BotApiServer, request: AiohttpRequest | None = None) -> telegram.Bot:
    return telegram.Bot(
        server.token,
        base_url=server.base_url,
        base_file_url=server.file_url,
        request=request or AiohttpRequest(),
        get_updates_request=AiohttpRequest(connection_pool_size=1),
    )


@pytest.fixture
async def bot(botapi: BotApiServer) -> AsyncIterator[telegram.Bot]:
    async with bot_on(botapi) as bot:
        yield bot


async def test_a_flood_answer_raises_retry_after_with_its_seconds(
    botapi: BotApiServer, bot: telegram.Bot, alice: User
) -> None:
    botapi.fail_next("sendMessage", status=429, retry_after=7)

    with pytest.raises(RetryAfter) as refused:
        await bot.send_message(ALICE_ID, "#1 逾期提醒")

    assert seconds(refused.value.retry_after) == 7


async def test_a_user_who_blocked_the_bot_raises_forbidden(
    bot: telegram.Bot, botapi: BotApiServer, alice: User
) -> None:
    botapi.client.block(alice)

    with pytest.raises(Forbidden, match="(?i)bot was blocked by the user"):
        await bot.send_message(ALICE_ID, "#1 逾期提醒")


async def test_a_refused_request_raises_bad_request_with_telegrams_words(
    bot: telegram.Bot,
) -> None:
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(424242, "nobody")


async def test_a_document_with_a_chinese_name_uploads_and_downloads(
    bot: telegram.Bot, botapi: BotApiServer, alice: User
) -> None:
    content = "整改报告\n".encode() * 100

    sent = await bot.send_document(ALICE_ID, content, filename="约谈函询.docx", caption="#7")

    assert sent.document is not None
    assert sent.document.file_name == "约谈函询.docx"
    assert sent.caption == "#7"
    record = botapi.client.last(ALICE_ID)
    assert record is not None and record.document is not None
    assert record.document.data == content
    file = await bot.get_file(sent.document.file_id)
    assert bytes(await file.download_as_bytearray()) == content


async def test_text_and_buttons_arrive_as_sent(
    bot: telegram.Bot, botapi: BotApiServer, alice: User
) -> None:
    markup = telegram.InlineKeyboardMarkup(
        [[telegram.InlineKeyboardButton("办结 & 提交", callback_data="submit:7")]]
    )

    await bot.send_message(ALICE_ID, "#7 会议记录不全 = 50% ✓", reply_markup=markup)

    record = botapi.client.last(ALICE_ID)
    assert record is not None
    assert record.text == "#7 会议记录不全 = 50% ✓"
    assert record.reply_markup == markup.to_dict()
    sent = await bot.get_updates()  # getUpdates goes through the other request
    assert sent == ()


async def test_a_slow_answer_times_out(botapi: BotApiServer, alice: User) -> None:
    botapi.delay("sendMessage", 0.5)
    async with bot_on(botapi, AiohttpRequest(read_timeout=0.1)) as bot:
        with pytest.raises(TimedOut) as failed:
            await bot.send_message(ALICE_ID, "slow")

    assert "Pool timeout" not in str(failed.value)


async def test_a_call_waiting_past_the_pool_timeout_is_not_sent(
    botapi: BotApiServer, alice: User
) -> None:
    botapi.delay("sendMessage", 0.5)
    request = AiohttpRequest(connection_pool_size=1, pool_timeout=0.1)
    async with bot_on(botapi, request) as bot:
        first = asyncio.create_task(bot.send_message(ALICE_ID, "first"))
        await asyncio.sleep(0.05)
        with pytest.raises(TimedOut, match="Pool timeout"):
            await bot.send_message(ALICE_ID, "second")
        await first

    assert [m.text for m in botapi.client.messages(ALICE_ID)] == ["first"]


async def test_an_unreachable_server_raises_network_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bot = telegram.Bot("1:x", base_url=f"http://127.0.0.1:{port}/bot", request=AiohttpRequest())
    async with bot.request:
        with pytest.raises(NetworkError) as failed:
            await bot.request.post(f"http://127.0.0.1:{port}/bot1:x/getMe")

    assert not isinstance(failed.value, TimedOut)
    assert "aiohttp.ClientConnectorError" in str(failed.value)


async def test_a_request_used_before_initialize_says_so() -> None:
    with pytest.raises(RuntimeError, match="not initialized"):
        await AiohttpRequest().do_request("http://127.0.0.1:9/", "POST")
