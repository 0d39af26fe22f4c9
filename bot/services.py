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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlmodel import Session
from telegram import Update
from telegram.ext import Application, BaseHandler, CallbackContext, ExtBot

from models import clock
from models.db import transaction
from models.delivery import Changes, OutboxWatch
from models.holidays import CalendarCache
from models.summaries import Facts
from settings import Settings

T = TypeVar("T")

log = logging.getLogger(__name__)

#: Threads that run the bot's database work. The work is mostly Python
#: (SQLAlchemy, the summaries), so threads beyond a few only take turns at the
#: GIL; on PostgreSQL they also wait on the network. With the process on one
#: CPU (cli/affinity.py), bench/bot_throughput.py's reads: SQLite 355/s with
#: two threads, 349 with four; PostgreSQL 127–168 with two, 188 with four.
DB_THREADS = 4


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

    async def db(self, work: Callable[[Session], T], *, read_only: bool = False) -> T:
        """Run `work(session)` in one transaction on a worker thread; commit if it returns.

        `read_only`: `work` only reads (models.db.transaction).
        """

        def run() -> T:
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
