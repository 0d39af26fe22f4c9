"""`closeout bot`: serve the bot, polling, or as a webhook when WEBHOOK_URL is set."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from cli import context
from settings import Settings

if TYPE_CHECKING:
    from models.delivery import Changes

log = logging.getLogger(__name__)


def configure_logging() -> None:
    """Log to stderr with time and level; set up here, never at import time."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Every getUpdates call is logged at INFO by httpx; keep the log about us.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def require_token(settings: Settings) -> str:
    if not settings.BOT_TOKEN:
        print("closeout: bad setting BOT_TOKEN: required to serve the bot", file=sys.stderr)
        raise SystemExit(2)
    return settings.BOT_TOKEN


def serve_bot(settings: Settings, *, enqueue: Callable[[Changes], None] | None = None) -> None:
    """Run the bot until interrupted (Ctrl-C or SIGTERM).

    `enqueue` gets what each committed transaction owed (Services.enqueue).
    """
    from bot.app import build_application

    require_token(settings)
    application = build_application(settings, context.engine())
    application.bot_data.enqueue = enqueue
    if settings.WEBHOOK_URL:
        from bot.webhook import Webhook, serve_webhook

        assert settings.WEBHOOK_SECRET is not None  # the settings refuse a webhook without
        host, port = settings.webhook_listen
        hook = Webhook(
            url=settings.WEBHOOK_URL,
            secret=settings.WEBHOOK_SECRET,
            host=host,
            port=port,
            path=urlparse(settings.WEBHOOK_URL).path.lstrip("/"),
        )
        serve_webhook(application, hook)
    else:
        from bot.polling import serve_polling

        log.info("polling %s", settings.TELEGRAM_API_URL)
        serve_polling(application)


def pin_cpu(settings: Settings) -> None:
    """Keep this process's threads on one CPU, as PIN_CPU says (cli/affinity.py)."""
    from cli.affinity import pin_process

    try:
        pin_process(settings.PIN_CPU)
    except ValueError as exc:
        print(f"closeout: bad setting PIN_CPU: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def exit_cleanly_on_sigterm() -> None:
    """From now until the bot's loop takes SIGTERM over, SIGTERM stops the process
    cleanly: SystemExit unwinds through the callers' `finally` (a `closeout run`
    stops its worker, pump and scheduler) instead of the default action killing
    it. Called first thing by the commands that serve the bot, since a process
    manager may stop them while they are still importing and starting."""
    signal.signal(signal.SIGTERM, _exit_cleanly)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
