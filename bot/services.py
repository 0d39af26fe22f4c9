"""What handlers reach through `context.bot_data`: the database and settings.

Typed (STYLE: context_types instead of string keys). Database work runs in a
worker thread, one transaction per call, so the event loop keeps serving
other updates while SQLite or PostgreSQL answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Engine
from sqlmodel import Session
from telegram.ext import Application, CallbackContext, ExtBot

from models import clock
from models.db import transaction
from models.holidays import load_calendar
from models.summaries import Facts
from settings import Settings

T = TypeVar("T")


@dataclass
class Services:
    engine: Engine
    settings: Settings

    async def db(self, work: Callable[[Session], T]) -> T:
        """Run `work(session)` in one transaction on a worker thread; commit if it returns."""

        def run() -> T:
            with transaction(self.engine) as session:
                return work(session)

        return await asyncio.to_thread(run)

    def facts(self, session: Session) -> Facts:
        """Today in the deployment's zone, the working-day calendar and the warning window."""
        return Facts(
            today=clock.today(self.settings.zone),
            calendar=load_calendar(session),
            warn_days=self.settings.WARN_DAYS,
        )


class Context(CallbackContext[ExtBot[None], dict, dict, "Services"]):  # type: ignore[type-arg]
    """The handlers' context: `context.bot_data` is the Services."""

    @property
    def services(self) -> Services:
        return self.bot_data  # type: ignore[return-value]


BotApplication = Application[ExtBot[None], Context, dict, dict, Services, None]  # type: ignore[type-arg]
