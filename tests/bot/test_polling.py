"""Polling in-process (bot/polling.py): which offset confirms what, and the loop
riding out the Bot API's failures. Killing and stopping real processes is in
tests/bot/test_processes.py."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Engine
from telegram.error import EndPointNotFound, InvalidToken

from bot.app import build_application
from bot.polling import BATCH_LIMIT, Inbox, Poller
from bot.services import BotApplication
from sandbox.botapi import BotApiServer, SandboxClient
from settings import Settings
from tests.bot.support import People

#: Times the Bot API fails getUpdates in a row in the tests below.
FAILURES = 2


def test_the_offset_is_the_oldest_update_still_in_hand() -> None:
    inbox = Inbox()
    first, second, third = inbox.take([7, 8, 9])
    inbox.finish(second)
    inbox.finish(third)
    assert inbox.offset() == 7
    inbox.finish(first)
    assert inbox.offset() == 10


def test_the_inbox_is_full_while_the_updates_from_the_oldest_in_hand_fill_a_batch() -> None:
    inbox = Inbox()
    taken = inbox.take(range(1, BATCH_LIMIT + 1))
    assert inbox.full()
    for update_id in taken[1:]:
        inbox.finish(update_id)
    assert inbox.full()  # the oldest still pins the offset: the same batch would come
    inbox.finish(taken[0])
    assert not inbox.full()


def test_nothing_taken_yet_leaves_the_offset_to_telegram() -> None:
    assert Inbox().offset() is None


def test_updates_in_hand_sent_again_are_not_taken_twice() -> None:
    inbox = Inbox()
    inbox.take([7, 8])
    assert inbox.take([7, 8, 9]) == [9]


def test_updates_are_taken_in_update_id_order() -> None:
    assert Inbox().take([9, 7, 8]) == [7, 8, 9]


def test_the_inbox_is_idle_only_when_nothing_is_in_hand() -> None:
    inbox = Inbox()
    assert inbox.idle.is_set()
    (update,) = inbox.take([1])
    assert not inbox.idle.is_set()
    inbox.finish(update)
    assert inbox.idle.is_set()


@pytest.mark.parametrize("status", [500, 502])
async def test_polling_goes_on_after_getupdates_failed_with_a_server_error(
    app: BotApplication, botapi: BotApiServer, client: SandboxClient, people: People, status: int
) -> None:
    botapi.fail_next("getUpdates", status=status, count=FAILURES)
    before = botapi.calls["getUpdates"]
    sent = client.send_text(people["M005"], "/whoami")
    reply = await client.wait_for(people["M005"].id, after=sent)
    assert "角色" in reply.text
    assert botapi.calls["getUpdates"] > before + FAILURES


async def test_polling_goes_on_after_getupdates_asked_to_retry_after_a_while(
    app: BotApplication, botapi: BotApiServer, client: SandboxClient, people: People
) -> None:
    botapi.fail_next("getUpdates", status=429, retry_after=1)
    before = botapi.calls["getUpdates"]
    sent = client.send_text(people["M005"], "/whoami")
    reply = await client.wait_for(people["M005"].id, after=sent)
    assert "角色" in reply.text
    assert botapi.calls["getUpdates"] > before + 1


async def test_polling_stops_when_the_token_is_revoked_while_it_runs(
    bot_settings: Settings, engine: Engine, botapi: BotApiServer
) -> None:
    application = build_application(bot_settings, engine)
    async with application:
        polling = asyncio.create_task(Poller(application, timeout=1).run(asyncio.Event()))
        while not botapi.calls["getUpdates"]:
            await asyncio.sleep(0.01)
        botapi.token = "7000000001:revoked"

        with pytest.raises((InvalidToken, EndPointNotFound)):
            await asyncio.wait_for(polling, timeout=10)
