"""One bot process's life: the signals that stop it, and python-telegram-bot's
start-up and shut-down hooks in the order its own run_polling calls them.

Shared by our polling loop (bot/polling.py) and our webhook (bot/webhook.py).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from bot.services import BotApplication

#: How long a stopping process waits for the updates it is handling.
STOP_GRACE = 30.0  # seconds
#: Signals that stop the process cleanly (as PTB's run_polling stops on them).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGABRT)


def stop_event() -> asyncio.Event:
    """An event the stop signals set, on the running loop (from the main thread)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    return stop


@asynccontextmanager
async def running(
    application: BotApplication, *, before_start: Callable[[], Awaitable[object]] | None = None
) -> AsyncIterator[None]:
    """The application initialised and started for the block, then stopped and shut down.

    post_init runs between initialize and start, then `before_start` (the
    webhook sets itself there); post_stop after stop; post_shutdown last.
    """
    async with application:  # initialize … shutdown
        if application.post_init is not None:
            await application.post_init(application)
        if before_start is not None:
            await before_start()
        await application.start()
        try:
            yield
        finally:
            await application.stop()
            if application.post_stop is not None:
                await application.post_stop(application)
    if application.post_shutdown is not None:
        await application.post_shutdown(application)
