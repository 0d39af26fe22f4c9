"""Users' actions arrive as Updates, through getUpdates long polling."""

from __future__ import annotations

import asyncio
import time

import pytest
import telegram
from telegram.error import Conflict

from sandbox.botapi import BotApiServer, SandboxClient, User, tiny_png
from tests.sandbox.support import ALICE_ID, GROUP_ID, make_bot, message_of, query_of, texts


async def test_get_updates_wakes_as_soon_as_a_user_writes(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.2)
    assert not poll.done()

    client.send_text(alice, "你好")
    updates = await asyncio.wait_for(poll, 3)

    assert time.monotonic() - started < 3
    assert texts(updates) == ["你好"]


async def test_get_updates_answers_empty_after_its_timeout(bot: telegram.Bot) -> None:
    started = time.monotonic()

    assert await bot.get_updates(timeout=1) == ()

    assert 0.9 <= time.monotonic() - started < 3


async def test_offset_confirms_earlier_updates(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    for text in ("one", "two", "three"):
        client.send_text(alice, text)

    first = await bot.get_updates(limit=2)
    rest = await bot.get_updates(offset=first[-1].update_id + 1)
    again = await bot.get_updates(offset=first[-1].update_id + 1)

    assert [u.update_id for u in first] == [1, 2]
    assert texts(rest) == ["three"]
    assert texts(again) == ["three"]  # not confirmed until a later offset


async def test_commands_carry_a_bot_command_entity(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    client.send_text(alice, "/start invite-42")
    client.send_text(alice, "/help@closeout_sandbox_bot")

    start, help_ = (message_of(update) for update in await bot.get_updates())

    assert start.entities[0].type == "bot_command"
    assert (start.entities[0].offset, start.entities[0].length) == (0, len("/start"))
    assert help_.parse_entity(help_.entities[0]) == "/help@closeout_sandbox_bot"
    assert start.from_user is not None and start.from_user.language_code == "zh"
    assert start.chat.type == "private" and start.chat.id == ALICE_ID
    assert abs(start.date.timestamp() - time.time()) < 5


async def test_media_and_locations_arrive_as_telegram_shapes(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    client.send_photo(alice, tiny_png(1000, 750), caption="#3 现场")
    client.send_location(alice, 39.9042, 116.4074)
    client.send_video(alice, b"\x00\x00\x00\x18ftypmp42", caption="#3 视频")

    photo, location, video = (message_of(update) for update in await bot.get_updates())

    assert photo.caption == "#3 现场"
    assert [(size.width, size.height) for size in photo.photo] == [
        (90, 68),
        (320, 240),
        (800, 600),
        (1000, 750),
    ]
    assert len({size.file_id for size in photo.photo}) == 4
    assert location.location is not None and video.video is not None
    assert (location.location.latitude, location.location.longitude) == (39.9042, 116.4074)
    assert video.video.mime_type == "video/mp4" and video.caption == "#3 视频"


async def test_a_reply_carries_the_replied_bot_message(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    card = await bot.send_message(ALICE_ID, "<b>#5</b> 整改中", parse_mode="HTML")
    client.send_text(alice, "已完成一半", reply_to=card.message_id)

    [update] = await bot.get_updates()

    replied = message_of(update).reply_to_message
    assert replied is not None
    assert replied.message_id == card.message_id
    assert replied.text == "#5 整改中"


async def test_in_a_group_the_bot_sees_only_commands_and_replies(
    bot: telegram.Bot, client: SandboxClient, alice: User, bob: User
) -> None:
    group = client.group(GROUP_ID, "督查一组", [alice, bob])
    notice = await bot.send_message(GROUP_ID, "#9 周报")
    client.send_text(alice, "大家好", chat=group)
    client.send_text(bob, "/ledger@closeout_sandbox_bot", chat=group)
    client.send_text(alice, "收到", chat=group, reply_to=notice.message_id)

    updates = await bot.get_updates()

    assert texts(updates) == ["/ledger@closeout_sandbox_bot", "收到"]
    assert message_of(updates[0]).chat.type == "group"
    assert message_of(updates[0]).chat.title == "督查一组"
    assert len(client.history(GROUP_ID)) == 4


async def test_a_second_bot_instance_polling_ends_the_first_with_conflict(
    server: BotApiServer, bot: telegram.Bot
) -> None:
    older = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.2)

    async with make_bot(server) as second_instance:
        await second_instance.get_updates(timeout=0)

    with pytest.raises(Conflict, match="terminated by other getUpdates request"):
        await asyncio.wait_for(older, 3)


async def test_allowed_updates_filters_what_arrives(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    card = await bot.send_message(
        ALICE_ID,
        "#1",
        reply_markup=telegram.InlineKeyboardMarkup(
            [[telegram.InlineKeyboardButton("ok", callback_data="ok")]]
        ),
    )
    client.send_text(alice, "text")
    client.press(alice, card.message_id, "ok", chat=ALICE_ID)

    updates = await bot.get_updates(allowed_updates=["callback_query"])

    assert [query_of(update).data for update in updates] == ["ok"]


async def test_blocking_the_bot_sends_a_my_chat_member_update(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    client.block(alice)

    [update] = await bot.get_updates()

    change = update.my_chat_member
    assert change is not None
    assert change.old_chat_member.status == "member"
    assert change.new_chat_member.status == "kicked"
    assert change.from_user.id == ALICE_ID


async def test_the_client_waits_for_the_bot_and_explains_a_time_out(
    server: BotApiServer, bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    async def reply_later() -> None:
        await asyncio.sleep(0.2)
        await bot.send_message(ALICE_ID, "稍后回复")

    task = asyncio.create_task(reply_later())
    found = await client.wait_for(ALICE_ID, "稍后", timeout=3)
    await task

    assert found.plain_text == "稍后回复"
    with pytest.raises(TimeoutError, match="稍后回复"):
        await client.wait_for(ALICE_ID, "never", timeout=0.2)
    assert len(await client.wait_for_count(ALICE_ID, 1)) == 1
