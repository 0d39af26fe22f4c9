"""A whole python-telegram-bot Application runs against the sandbox, polling or threaded."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ApplicationBuilder, CallbackQueryHandler, CommandHandler, ContextTypes

from sandbox.botapi import BotApiServer, SandboxClient, User, running_server
from tests.sandbox.support import ALICE_ID, updater_of


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Greet."""
    assert update.effective_message is not None
    await update.effective_message.reply_text("hi")


async def confirm(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer the press, then mark the card done."""
    query = update.callback_query
    assert query is not None
    await query.answer("ok")
    await query.edit_message_text(f"done: {query.data}")


async def test_an_application_answers_start_by_polling(
    server: BotApiServer, client: SandboxClient, alice: User
) -> None:
    app = (
        ApplicationBuilder()
        .token(server.token)
        .base_url(server.base_url)
        .base_file_url(server.file_url)
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(confirm))
    async with app:
        await app.start()
        await updater_of(app).start_polling(poll_interval=0.0, timeout=1)
        try:
            sent = client.send_text(alice, "/start")
            reply = await client.wait_for(ALICE_ID, "hi", after=sent)
            assert reply.reply_to is None
            assert server.calls["getUpdates"] >= 1
            assert server.calls["deleteWebhook"] == 1  # PTB's bootstrap before polling
        finally:
            await updater_of(app).stop()
            await app.stop()


async def test_an_application_handles_a_button_press(
    server: BotApiServer, client: SandboxClient, alice: User
) -> None:
    app = ApplicationBuilder().token(server.token).base_url(server.base_url).build()
    app.add_handler(CallbackQueryHandler(confirm))
    async with app:
        await app.bot.send_message(
            ALICE_ID,
            "#4",
            reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="ok:4")]]),
        )
        await app.start()
        await updater_of(app).start_polling(poll_interval=0.0, timeout=1)
        try:
            pressed = client.press(alice, client.messages(ALICE_ID)[0], "ok:4")
            await client.wait_for_answer(pressed)
            card = await client.wait_for(ALICE_ID, "done: ok:4")
            assert card.message_id == 1 and card.edits
        finally:
            await updater_of(app).stop()
            await app.stop()


def call(url: str, payload: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        url, json.dumps(payload).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        return json.load(error)


def test_a_threaded_server_serves_synchronous_callers() -> None:
    with running_server(bot_username="demo_bot") as server:
        alice = server.client.user(ALICE_ID, "张三")
        server.client.send_text(alice, "/start")

        me = call(f"{server.base_url}{server.token}/getMe", {})
        updates = call(f"{server.base_url}{server.token}/getUpdates", {"timeout": 1})
        sent = call(
            f"{server.base_url}{server.token}/sendMessage", {"chat_id": ALICE_ID, "text": "hi"}
        )
        wrong = call(f"{server.base_url}wrong/getMe", {})
        missing = call(f"{server.base_url}{server.token}/sendTelepathy", {})

        assert me["result"]["username"] == "demo_bot"  # type: ignore[index]
        assert updates["result"][0]["message"]["text"] == "/start"  # type: ignore[index]
        assert sent["ok"] is True
        assert server.client.wait_for_blocking(ALICE_ID, "hi", timeout=2).message_id == 2
        assert wrong == {"ok": False, "error_code": 401, "description": "Unauthorized"}
        assert missing == {"ok": False, "error_code": 404, "description": "Not Found"}
    with pytest.raises(OSError):
        call(f"{server.base_url}{server.token}/getMe", {})
