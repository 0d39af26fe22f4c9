"""What handlers reach through `context.bot_data`: the database and settings.

Typed (STYLE: context_types instead of string keys). Database work runs on
one of DB_THREADS worker threads, one transaction per call, so the event loop
keeps serving other updates while SQLite or PostgreSQL answers. When `enqueue` is set
(`closeout run`, `closeout bot`), what a transaction owed the outbox is handed
to it after commit, so pushes leave within seconds (DESIGN "One write path").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session
from telegram import Update
from telegram.ext import Application, BaseHandler, CallbackContext, ExtBot

from models import clock
from models.cards import SentCard, remember_cards
from models.db import transaction
from models.delivery import Changes, OutboxWatch
from models.holidays import CalendarCache
from models.summaries import Facts
from settings import Settings

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)

#: Threads that run the bot's database work. The work is mostly Python
#: (SQLAlchemy, the summaries), so threads beyond a few only take turns at the
#: GIL; on PostgreSQL they also wait on the network. With the process on one
#: CPU (cli/affinity.py), bench/bot_throughput.py's reads: SQLite 355/s with
#: two threads, 349 with four; PostgreSQL 127–168 with two, 188 with four.
DB_THREADS = 4


class GroupWrite(Generic[R]):
    """Rows handed in while a write is under way wait, and go together in the next one.

    `add` returns once its row is committed (or raises what the write raised),
    as a transaction of its own would, so a handler that awaits it is done only
    when the row is stored. An idle bot writes each row at once; a busy one
    (hundreds of updates a second) writes the rows of many updates in one
    transaction instead of one each. Runs on the event loop: no lock.
    """

    def __init__(self, write: Callable[[list[R]], Awaitable[None]]) -> None:
        self._write = write
        self._waiting: list[tuple[R, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def add(self, row: R) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((row, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            waiting = [future for _, future in batch]
            try:
                await self._write([row for row, _ in batch])
            except Exception as error:
                for future in _unsettled(waiting):
                    future.set_exception(error)
            else:
                for future in _unsettled(waiting):
                    future.set_result(None)
            finally:
                # Still unsettled: the write was cancelled with the loop, and
                # so are the handlers waiting for it.
                for future in _unsettled(waiting):
                    future.cancel()


def _unsettled(futures: list[asyncio.Future[None]]) -> list[asyncio.Future[None]]:
    # A handler cancelled meanwhile has cancelled its own future.
    return [future for future in futures if not future.done()]


@dataclass
class Services:
    engine: Engine
    settings: Settings
    #: Called after a commit with the notifications it owed and the items it
    #: changed (tasks.delivery.enqueue_changes); None: the pump finds them.
    enqueue: Callable[[Changes], None] | None = None
    #: This process's working-day calendar, rebuilt when an admin imports holidays.
    calendars: CalendarCache = field(default_factory=CalendarCache)
    _threads: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(DB_THREADS, thread_name_prefix="bot-db"),
        repr=False,
    )
    #: The item cards this process sent, remembered in as few transactions as
    #: the load allows (bot/replies.record_sent).
    cards: GroupWrite[SentCard] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.cards = GroupWrite(self._remember_cards)

    async def _remember_cards(self, cards: list[SentCard]) -> None:
        await self.db(lambda session: remember_cards(session, cards))

    async def db(self, work: Callable[[Session], T], *, read_only: bool = False) -> T:
        """Run `work(session)` in one transaction on a worker thread; commit if it returns.

        `read_only`: `work` only reads (models.db.transaction); it runs again
        once if the database connection was lost under it.
        """

        def run() -> T:
            try:
                return once()
            except DBAPIError as error:
                # The connection was lost (the database restarted): SQLAlchemy
                # has dropped the pool's connections, and a read is safe to run
                # again on a new one. A write may have committed: not retried.
                if not (read_only and error.connection_invalidated):
                    raise
                log.warning("database connection lost; reading again on a new one")
                return once()

        def once() -> T:
            changes = None
            with transaction(self.engine, read_only=read_only) as session:
                # A read owes nothing: no watch, whose listeners cost every update.
                watch = OutboxWatch(session) if self.enqueue and not read_only else None
                result = work(session)
                if watch is not None:
                    changes = watch.seal(session)
            if changes and self.enqueue is not None:
                try:
                    self.enqueue(changes)
                except Exception:  # noqa: BLE001 - the rows are committed; the pump sends them
                    log.warning("could not enqueue %r; the pump will", changes, exc_info=True)
            return result

        return await asyncio.get_running_loop().run_in_executor(self._threads, run)

    def facts(self, session: Session) -> Facts:
        """Today in the deployment's zone, the working-day calendar and the warning window."""
        return Facts(
            today=clock.today(self.settings.zone),
            calendar=self.calendars.calendar(session),
            warn_days=self.settings.WARN_DAYS,
        )


class Context(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], "Services"]):
    """The handlers' context: `context.bot_data` is the Services."""

    @property
    def services(self) -> Services:
        return self.bot_data


BotApplication = Application[ExtBot[None], Context, dict[Any, Any], dict[Any, Any], Services, None]
#: What the handler modules' `handlers()` list: callbacks return what PTB makes of it.
Handler = BaseHandler[Update, Context, Any]
