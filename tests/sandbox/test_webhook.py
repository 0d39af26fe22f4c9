"""Webhook mode: updates are POSTed to the bot with the secret header, retried until 2xx."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import telegram
from aiohttp import web
from telegram.error import Conflict

from sandbox.botapi import SandboxClient, User
from sandbox.botapi.webhook import SECRET_HEADER
from tests.sandbox.support import message_of, texts

SECRET = "s3cret-Token_1"


@dataclass
class Receiver:
    """A tiny aiohttp app standing in for the bot's webhook listener."""

    url: str = ""
    received: list[tuple[str | None, dict[str, object]]] = field(default_factory=list)
    #: Statuses to answer first, before answering 200.
    failures: list[int] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((request.headers.get(SECRET_HEADER), await request.json()))
        if self.failures:
            return web.Response(status=self.failures.pop(0))
        self.arrived.set()
        return web.Response(text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver listening on another free port."""
    target = Receiver()
    app = web.Application()
    app.router.add_post("/hook", target.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    target.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield target
    await runner.cleanup()


async def test_updates_are_posted_with_the_secret_header(
    bot: telegram.Bot, client: SandboxClient, alice: User, receiver: Receiver
) -> None:
    assert await bot.set_webhook(receiver.url, secret_token=SECRET)

    client.send_text(alice, "/start")
    await asyncio.wait_for(receiver.arrived.wait(), 5)

    [(secret, update)] = receiver.received
    assert secret == SECRET
    assert message_of(telegram.Update.de_json(update, bot)).text == "/start"
    info = await bot.get_webhook_info()
    assert info.url == receiver.url and info.pending_update_count == 0


async def test_a_failing_webhook_is_retried_and_its_error_shown(
    bot: telegram.Bot, client: SandboxClient, alice: User, receiver: Receiver
) -> None:
    receiver.failures = [500, 503]
    await bot.set_webhook(receiver.url, secret_token=SECRET)

    client.send_text(alice, "hello")
    await asyncio.wait_for(receiver.arrived.wait(), 5)

    assert len(receiver.received) == 3
    assert {update["update_id"] for _, update in receiver.received} == {1}
    info = await bot.get_webhook_info()
    assert info.last_error_message == "Wrong response from the webhook: 503 Service Unavailable"


async def test_get_updates_conflicts_with_a_webhook(
    bot: telegram.Bot, client: SandboxClient, alice: User, receiver: Receiver
) -> None:
    await bot.set_webhook("http://127.0.0.1:9/unreachable")
    client.send_text(alice, "waiting")

    with pytest.raises(Conflict, match="(?i)webhook is active"):
        await bot.get_updates()

    assert await bot.delete_webhook()
    assert texts(await bot.get_updates()) == ["waiting"]


async def test_delete_webhook_can_drop_pending_updates(
    bot: telegram.Bot, client: SandboxClient, alice: User
) -> None:
    client.send_text(alice, "old")

    await bot.delete_webhook(drop_pending_updates=True)

    assert await bot.get_updates() == ()


async def test_a_bad_secret_token_is_refused(bot: telegram.Bot, receiver: Receiver) -> None:
    with pytest.raises(telegram.error.BadRequest, match="(?i)unallowed characters"):
        await bot.set_webhook(receiver.url, secret_token="no spaces allowed")
