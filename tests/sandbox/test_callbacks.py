"""A press on an inline button: callback_query, answer within the window, then an edit."""

from __future__ import annotations

import asyncio

import pytest
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest

from sandbox.botapi import BotApiServer, SandboxClient, User
from tests.sandbox.support import ALICE_ID, make_bot, query_of

VERIFY = InlineKeyboardMarkup([[InlineKeyboardButton("验收销号", callback_data="verify:7:3")]])


async def test_a_press_round_trip_answers_and_edits_the_card(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    card = await bot.send_message(ALICE_ID, "#7 🟡 待验收", reply_markup=VERIFY)
    record = client.last(ALICE_ID)
    assert record is not None

    pressed = client.press(alice, record, "verify:7:3")
    [update] = await bot.get_updates()
    query = query_of(update)
    assert query.data == "verify:7:3"
    assert query.from_user.id == ALICE_ID
    assert isinstance(query.message, telegram.Message)
    assert query.message.message_id == card.message_id
    assert query.message.text == "#7 🟡 待验收"
    assert query.chat_instance

    assert await query.answer("已销号")
    await query.edit_message_text("#7 已销号")

    answered = await client.wait_for_answer(pressed)
    assert answered.answer_text == "已销号" and not answered.show_alert
    edited = await client.wait_for(ALICE_ID, "已销号")
    assert edited.message_id == card.message_id
    assert edited.buttons == []


async def test_a_late_answer_is_too_old(server: BotApiServer, alice: User) -> None:
    server.world.callback_answer_window = 0.2
    async with make_bot(server) as bot:
        await bot.send_message(ALICE_ID, "#7", reply_markup=VERIFY)
        server.client.press(alice, server.client.messages(ALICE_ID)[0], "verify:7:3")
        [update] = await bot.get_updates()
        await asyncio.sleep(0.3)

        with pytest.raises(BadRequest, match="(?i)query is too old"):
            await query_of(update).answer()


async def test_a_query_is_answered_only_once(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    await bot.send_message(ALICE_ID, "#7", reply_markup=VERIFY)
    client.press(alice, client.messages(ALICE_ID)[0], "verify:7:3")
    [update] = await bot.get_updates()
    await query_of(update).answer(show_alert=True, text="请先上传佐证")

    with pytest.raises(BadRequest, match="(?i)query ID is invalid"):
        await query_of(update).answer()


async def test_pressing_a_button_that_is_not_there_needs_forging(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    await bot.send_message(ALICE_ID, "#7", reply_markup=VERIFY)
    card = client.messages(ALICE_ID)[0]

    with pytest.raises(ValueError, match="no button"):
        client.press(alice, card, "verify:8:1")
    client.press(alice, card, "verify:8:1", forged=True)

    [update] = await bot.get_updates()
    assert query_of(update).data == "verify:8:1"
