"""The bot end to end: the real python-telegram-bot Application, polling the
local Bot API server, on the test's database (SQLite, then PostgreSQL), with
the fixture district's members bound to simulated Telegram users."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from bot.app import build_application
from bot.polling import Poller
from bot.services import BotApplication
from models.db import transaction
from models.tables import Member
from sandbox.botapi import BotApiServer, Limits, SandboxClient
from settings import Settings, load_settings
from tests.bot.support import People, user_id_of
from tests.support import District

#: Seconds between getUpdates calls when the server has nothing (long poll wakes earlier).
POLL_TIMEOUT = 1


@pytest.fixture
async def botapi() -> AsyncIterator[BotApiServer]:
    """The local Bot API server with Telegram's flood limits off."""
    async with BotApiServer(limits=Limits(enabled=False)) as server:
        yield server


@pytest.fixture
def client(botapi: BotApiServer) -> SandboxClient:
    return botapi.client


@pytest.fixture
def bot_settings(database_url: str, botapi: BotApiServer) -> Settings:
    return load_settings(
        DATABASE_URL=database_url,
        BOT_TOKEN=botapi.token,
        TELEGRAM_API_URL=botapi.base_url,
        TELEGRAM_FILE_URL=botapi.file_url,
        QUIET_HOURS="",
    )


@pytest.fixture
def people(engine: Engine, district: District, client: SandboxClient) -> People:
    """Every member of the district as a Telegram user; all bound but M006 and M008."""
    users = {}
    with transaction(engine) as session:
        for code, member_id in district.members.items():
            member = session.get(Member, member_id)
            assert member is not None
            uid = user_id_of(member_id)
            users[code] = client.user(uid, member.name, language_code=member.language or "zh")
            if code not in ("M006", "M008"):
                member.telegram_user_id = uid
                member.chat_id = uid
                session.add(member)
    stranger = client.user(999_999, "路人", language_code="zh")
    return People(users=users, stranger=stranger, district=district)


@pytest.fixture
async def app(
    bot_settings: Settings, engine: Engine, people: People
) -> AsyncIterator[BotApplication]:
    """The bot, polling the local server with our loop (bot/polling.py), until the test ends."""
    application = build_application(bot_settings, engine)
    async with application:
        # serve_polling calls post_init between initialize and start; so do we.
        assert application.post_init is not None
        await application.post_init(application)
        await application.start()
        stop = asyncio.Event()
        polling = asyncio.create_task(Poller(application, timeout=POLL_TIMEOUT).run(stop))
        yield application
        stop.set()
        await polling
        await application.stop()


def member_in(engine: Engine, member_id: int) -> Member:
    with Session(engine) as session:
        member = session.get(Member, member_id)
        assert member is not None
        return member
