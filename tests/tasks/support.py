"""Helpers for the delivery tests: settings, bound members, owed rows, waiting."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import dramatiq
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from models.db import transaction
from models.ledger import NewItem, create_item
from models.outbox import notify
from models.tables import Item, Member, Notification
from sandbox.botapi import BotApiServer, MessageRecord
from settings import Settings, load_settings
from tasks import Runtime
from tests.support import District

#: Telegram user ids of the district's members: 20000 + member id.
USER_ID_BASE = 20_000
#: The project's root, where `python -m cli` runs.
ROOT = Path(__file__).resolve().parents[2]


def user_id_of(member_id: int) -> int:
    return USER_ID_BASE + member_id


def make_settings(
    database_url: str, server: BotApiServer, redis_url: str | None = None, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "BOT_TOKEN": server.token,
        "TELEGRAM_API_URL": server.base_url,
        "TELEGRAM_FILE_URL": server.file_url,
        "REDIS_URL": redis_url or "",
        "QUIET_HOURS": "",
        "TIMEZONE": "Asia/Shanghai",
        "LANGUAGE": "zh",
    }
    values.update(overrides)
    return load_settings(**values)


def bind(
    engine: Engine, district: District, server: BotApiServer, codes: Iterable[str]
) -> dict[str, int]:
    """Bind members to simulated Telegram users; returns their chat ids by code."""
    chats = {}
    with transaction(engine) as session:
        for code in codes:
            member = district.member(session, code)
            assert member.id is not None
            uid = user_id_of(member.id)
            server.client.user(uid, member.name, language_code=member.language or "zh")
            member.telegram_user_id = member.chat_id = uid
            session.add(member)
            chats[code] = uid
    return chats


def new_item(
    engine: Engine, district: District, org: str, title: str, due: date, responsible: str
) -> int:
    """An item created by the system (owes `assigned` to its responsible and secretaries)."""
    with transaction(engine) as session:
        item = create_item(
            session,
            None,
            NewItem(
                kind="problem",
                org_id=district.orgs[org],
                title=title,
                due_date=due,
                responsible_id=district.members[responsible],
            ),
        )
        assert item.number is not None
        return item.number


def owe(engine: Engine, **values: Any) -> int:
    """One notification row, as a writer owes it; returns its id."""
    with transaction(engine) as session:
        assert notify(session, **values)
        return newest_id(session)


def newest_id(session: Session) -> int:
    found = session.exec(select(Notification.id).order_by(col(Notification.id).desc())).first()
    assert found is not None
    return found


def rows(engine: Engine, ids: Iterable[int] | None = None) -> list[Notification]:
    with Session(engine) as session:
        query = select(Notification).order_by(col(Notification.id))
        if ids is not None:
            query = query.where(col(Notification.id).in_(list(ids)))
        return list(session.exec(query).all())


def row(engine: Engine, notification_id: int) -> Notification:
    with Session(engine) as session:
        found = session.get(Notification, notification_id)
        assert found is not None
        return found


def member(engine: Engine, member_id: int) -> Member:
    with Session(engine) as session:
        found = session.get(Member, member_id)
        assert found is not None
        return found


def item(engine: Engine, number: int) -> Item:
    with Session(engine) as session:
        found = session.get(Item, number)
        assert found is not None
        return found


def wait_until(
    condition: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll `condition` until it is truthy; its value, or AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(interval)


def settled(engine: Engine, ids: Iterable[int]) -> Callable[[], bool]:
    """A condition: none of the rows is pending any more."""
    wanted = list(ids)
    return lambda: all(r.status != "pending" for r in rows(engine, wanted))


def bot_messages(server: BotApiServer, chat_id: int) -> list[MessageRecord]:
    return server.client.messages(chat_id)


@dataclass
class Delivery:
    """A runtime with a running dramatiq Worker in this process."""

    rt: Runtime
    worker: dramatiq.Worker
    server: BotApiServer

    @property
    def engine(self) -> Engine:
        return self.rt.engine


def worker_process(
    settings: Settings, namespace: str, *options: str, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """`closeout worker` as a subprocess (its own process group, so it can be killed whole)."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=settings.DATABASE_URL,
        REDIS_URL=settings.REDIS_URL or "",
        BOT_TOKEN=settings.BOT_TOKEN or "",
        TELEGRAM_API_URL=settings.TELEGRAM_API_URL,
        TELEGRAM_FILE_URL=settings.TELEGRAM_FILE_URL,
        QUIET_HOURS="",
        TIMEZONE=settings.TIMEZONE,
        LANGUAGE=settings.LANGUAGE,
    )
    output = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - lives with the process
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "worker", "--redis-namespace", namespace, *options],
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
