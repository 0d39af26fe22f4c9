"""The webhook: Telegram's POSTs, each answered once its update has been handled.

Telegram sends a chat's next update only after the webhook answered the one
before. python-telegram-bot's own webhook answers 200 as soon as an update is
queued, before any handler ran; behind a load balancer the next update of the
same person then reaches another process while the first is still being
handled there, and a photo sent right after /submit can be read before the
submission is open. Answering after the handlers restores one person's order
across processes, and an update whose process dies before finishing it is
never answered, so Telegram sends it again (evidence is kept once per message,
bot/conversations/evidence.py `add_entry`).

A request without the secret header, or with another secret, gets 403 and
reaches no handler.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import dataclass

from aiohttp import web
from telegram import Update

from bot.lifecycle import STOP_GRACE, running, stop_event
from bot.services import BotApplication

log = logging.getLogger(__name__)

#: Header in which Telegram sends the secret given to setWebhook.
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
#: Connections Telegram may open to the webhook at once (setWebhook's default).
MAX_CONNECTIONS = 40


@dataclass(frozen=True)
class Webhook:
    """Where Telegram posts (`url`) and where this process listens for it."""

    url: str
    secret: str
    host: str
    port: int
    path: str


def serve_webhook(application: BotApplication, hook: Webhook) -> None:
    """Serve the bot behind `hook` until SIGINT, SIGTERM or SIGABRT."""
    asyncio.run(_serve(application, hook))


async def _serve(application: BotApplication, hook: Webhook) -> None:
    stop = stop_event()

    async def set_webhook() -> None:
        # Every process sets the same URL (the balancer's); none deletes it on
        # the way out, so the others go on receiving while one restarts.
        await application.bot.set_webhook(
            hook.url,
            secret_token=hook.secret,
            max_connections=MAX_CONNECTIONS,
            drop_pending_updates=False,
        )

    async with running(application, before_start=set_webhook):
        runner = web.AppRunner(
            make_app(application, hook), access_log=None, shutdown_timeout=STOP_GRACE
        )
        try:
            await runner.setup()
            await web.TCPSite(runner, hook.host, hook.port).start()
            log.info("serving the webhook %s on %s port %d", hook.url, hook.host, hook.port)
            await stop.wait()
            log.info("stopping: finishing the updates in hand")
        finally:
            await runner.cleanup()


def make_app(application: BotApplication, hook: Webhook) -> web.Application:
    """The HTTP side: POST /`path` with the secret header, answered after the handlers."""
    secret = hook.secret.encode()

    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, secret):
            log.warning("refused a request without the right secret from %s", request.remote)
            return web.Response(status=403, text="wrong or missing secret token")
        try:
            data = await request.json()
            update = Update.de_json(data, application.bot) if isinstance(data, dict) else None
        except (ValueError, TypeError, KeyError):
            update = None
        if update is None:
            return web.Response(status=400, text="not an update")
        # Handler errors go to the application's error handler, not here.
        await application.process_update(update)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/" + hook.path, receive)
    return app
