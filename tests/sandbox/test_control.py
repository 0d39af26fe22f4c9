"""The web chat's control API under /_sandbox/: users, chats, actions, messages, files."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import telegram

from sandbox.botapi import BotApiServer, tiny_png
from tests.sandbox.support import ALICE_ID, GROUP_ID, message_of, query_of


@pytest.fixture
async def http(server: BotApiServer) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP session rooted at the server."""
    async with aiohttp.ClientSession(base_url=server.url) as session:
        yield session


async def result(response: aiohttp.ClientResponse) -> Any:
    body = await response.json()
    assert body["ok"], body
    return body["result"]


async def test_users_and_groups_are_created_and_listed(http: aiohttp.ClientSession) -> None:
    await result(await http.post("/_sandbox/users", json={"id": ALICE_ID, "first_name": "张三"}))
    await result(
        await http.post(
            "/_sandbox/chats", json={"id": GROUP_ID, "title": "督查一组", "members": [ALICE_ID]}
        )
    )

    users = await result(await http.get("/_sandbox/users"))
    chats = await result(await http.get("/_sandbox/chats"))

    assert users == [{"id": ALICE_ID, "is_bot": False, "first_name": "张三", "language_code": "zh"}]
    assert {chat["id"]: chat["members"] for chat in chats} == {
        ALICE_ID: [],
        GROUP_ID: [ALICE_ID],
    }
    bot = await result(await http.get("/_sandbox/bot"))
    assert bot["username"] == "closeout_sandbox_bot"


async def test_a_text_action_reaches_the_bot_and_its_reply_comes_back(
    http: aiohttp.ClientSession, bot: telegram.Bot
) -> None:
    await http.post("/_sandbox/users", json={"id": ALICE_ID, "first_name": "张三"})
    sent = await result(
        await http.post(
            f"/_sandbox/chats/{ALICE_ID}/actions",
            json={"type": "text", "user_id": ALICE_ID, "text": "/my"},
        )
    )
    [update] = await bot.get_updates()
    assert message_of(update).text == "/my"

    waiting = asyncio.create_task(
        http.get(f"/_sandbox/chats/{ALICE_ID}/messages?since={sent['revision']}&timeout=5")
    )
    await asyncio.sleep(0.1)
    await bot.send_message(ALICE_ID, "<b>#1</b> 待整改", parse_mode="HTML")
    changed = await result(await waiting)

    [message] = changed["messages"]
    assert message["from_bot"] and message["text"] == "#1 待整改"
    assert message["source_text"] == "<b>#1</b> 待整改"


async def test_a_photo_upload_and_a_press_are_actions_too(
    http: aiohttp.ClientSession, bot: telegram.Bot
) -> None:
    await http.post("/_sandbox/users", json={"id": ALICE_ID, "first_name": "张三"})
    form = aiohttp.FormData()
    form.add_field("type", "photo")
    form.add_field("user_id", str(ALICE_ID))
    form.add_field("caption", "#2 现场")
    form.add_field("file", tiny_png(), filename="scene.png", content_type="image/png")

    photo = await result(await http.post(f"/_sandbox/chats/{ALICE_ID}/actions", data=form))
    file_id = photo["photo"][-1]["file_id"]
    download = await http.get(f"/_sandbox/files/{file_id}")
    assert await download.read() == tiny_png()
    assert download.content_type == "image/png"

    card = await bot.send_message(
        ALICE_ID,
        "#2",
        reply_markup=telegram.InlineKeyboardMarkup(
            [[telegram.InlineKeyboardButton("ok", callback_data="ok:2")]]
        ),
    )
    pressed = await result(
        await http.post(
            f"/_sandbox/chats/{ALICE_ID}/actions",
            json={
                "type": "press",
                "user_id": ALICE_ID,
                "message_id": card.message_id,
                "data": "ok:2",
            },
        )
    )
    updates = await bot.get_updates()
    assert query_of(updates[-1]).id == pressed["callback_query_id"]


async def test_bad_control_requests_are_refused_plainly(http: aiohttp.ClientSession) -> None:
    missing = await http.get("/_sandbox/chats/5/messages")
    assert missing.status == 404
    assert await missing.json() == {"ok": False, "error": "no chat 5"}
    await http.post("/_sandbox/users", json={"id": ALICE_ID, "first_name": "张三"})
    unknown = await http.post(
        f"/_sandbox/chats/{ALICE_ID}/actions", json={"type": "dance", "user_id": ALICE_ID}
    )
    assert unknown.status == 400
