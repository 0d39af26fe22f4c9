"""One person's updates reach the conversations one at a time, in the order they arrived."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable

from telegram import Update

from bot.guard import Callback
from bot.services import Context


class Turns:
    """Runs one person's updates through these handlers one at a time, in arrival order.

    The Application processes updates concurrently, so a photo sent right
    after /submit (or queued while the bot was down and fetched in one batch)
    could otherwise be handled before the draft exists. python-telegram-bot
    starts the handlers of consecutive updates in order; the lock is taken
    before the first await, and asyncio's locks are fair (FIFO). Holds locks
    only while someone waits on them: nothing that matters lives here, and a
    second bot process is kept consistent by the draft's row lock instead.
    """

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def of(self, user_id: int) -> AsyncIterator[None]:
        # No await before the lock is taken: that is what keeps arrival order.
        lock, users = self._locks.get(user_id) or (asyncio.Lock(), 0)
        self._locks[user_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[user_id]
            if users <= 1:
                del self._locks[user_id]
            else:
                self._locks[user_id] = (lock, users - 1)


_TURNS = Turns()


def in_turn(handler: Callable[[Update, Context], Awaitable[None]]) -> Callback:
    """Wrap a handler so each person's updates reach it one at a time, in order."""

    @functools.wraps(handler)
    async def wrapped(update: Update, context: Context) -> None:
        user = update.effective_user
        if user is None:
            await handler(update, context)
            return
        async with _TURNS.of(user.id):
            await handler(update, context)

    return wrapped
