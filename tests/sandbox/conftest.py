"""Fixtures for the local Bot API server: a started server, its client, a real PTB Bot."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import telegram

from sandbox.botapi import BotApiServer, Limits, SandboxClient, User
from tests.sandbox.support import ALICE_ID, BOB_ID, make_bot


@pytest.fixture
async def server() -> AsyncIterator[BotApiServer]:
    """A running server with the flood limits off (tests that need them make their own)."""
    async with BotApiServer(limits=Limits(enabled=False)) as running:
        yield running


@pytest.fixture
def client(server: BotApiServer) -> SandboxClient:
    """The user side of `server`."""
    return server.client


@pytest.fixture
def alice(client: SandboxClient) -> User:
    """A Chinese-speaking user with a private chat with the bot."""
    return client.user(ALICE_ID, "张三", username="zhangsan", language_code="zh")


@pytest.fixture
def bob(client: SandboxClient) -> User:
    """An English-speaking user with a private chat with the bot."""
    return client.user(BOB_ID, "Bob", username="bob_inspector", language_code="en")


@pytest.fixture
async def bot(server: BotApiServer) -> AsyncIterator[telegram.Bot]:
    """python-telegram-bot's real Bot, pointed at the server and initialised (getMe)."""
    async with make_bot(server) as ready:
        yield ready
