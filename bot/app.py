"""Assemble the Application: every handler, in an order chosen on purpose.

`build_application(settings, engine)` is the one place the bot is wired.
Nothing that matters lives in the Application's memory: conversations are
rows (models.tables.Draft), buttons carry their own data (bot.callbacks), so
several bot processes can serve one bot behind a webhook.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import Engine
from telegram import BotCommand, BotCommandScopeDefault, Update
from telegram.ext import (
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    filters,
)

from bot import account, actions, conversations, queries, spotchecks
from bot.commands import COMMANDS
from bot.guard import guess_lang, reply
from bot.services import BotApplication, Context, Services
from bot.transport import AiohttpRequest
from models.invites import remember_bot_username
from models.texts import t
from settings import Settings

log = logging.getLogger(__name__)

#: Seconds the bot waits on the Bot API before counting a call as failed.
API_TIMEOUT = 20.0


def build_application(settings: Settings, engine: Engine) -> BotApplication:
    """The bot, wired and ready to start; talks to TELEGRAM_API_URL."""
    services = Services(engine=engine, settings=settings)
    # PTB makes bot_data by calling what it is given, typed as a class; ours is
    # the one Services object, so a factory stands there.
    context_types: ContextTypes[Context, dict[Any, Any], dict[Any, Any], Services] = ContextTypes(  # type: ignore[call-overload]
        context=Context, bot_data=lambda: services
    )
    application = (
        ApplicationBuilder()
        .token(settings.BOT_TOKEN or "")
        .base_url(settings.TELEGRAM_API_URL)
        .base_file_url(settings.TELEGRAM_FILE_URL)
        .context_types(context_types)
        .defaults(Defaults(do_quote=False))
        # No AIORateLimiter: it is per process and pauses every request on one
        # 429. Replies here answer one person's own message, at that person's
        # pace; bulk pushes go through the delivery jobs' shared limiter.
        .concurrent_updates(True)
        # aiohttp, not PTB's httpx: the Bot API call was the largest single
        # cost per update (bot/transport.py). getUpdates keeps a request of its
        # own, one connection, with PTB's default timeouts, as PTB builds it.
        .request(AiohttpRequest(read_timeout=API_TIMEOUT, write_timeout=API_TIMEOUT))
        .get_updates_request(AiohttpRequest(connection_pool_size=1))
        .post_init(_post_init)
        # Scheduling is `closeout scheduler`'s (DESIGN "Scheduling"), not PTB's JobQueue.
        .job_queue(None)
        .build()
    )
    _add_handlers(application)
    return application


def _add_handlers(application: BotApplication) -> None:
    # Group 0, first match wins. Commands are matched by name and buttons by
    # their verb, so the families do not overlap; the conversations' handlers
    # for free messages (evidence, reasons, replies to cards) come after every
    # command, and the catch-all for unknown commands comes last.
    for module in (account, queries, actions, spotchecks, conversations):
        for handler in module.handlers():
            application.add_handler(handler)
    application.add_handler(CallbackQueryHandler(actions.invalid_button))
    application.add_handler(MessageHandler(filters.COMMAND, account.unknown))
    application.add_error_handler(on_error)


async def _post_init(application: BotApplication) -> None:
    """Remember our @username for invite links; register the command menus in zh and en."""
    services: Services = application.bot_data
    username = application.bot.username
    await services.db(lambda session: remember_bot_username(session, username))
    for lang in ("zh", "en"):
        commands = [BotCommand(c.name, c.description(lang)) for c in COMMANDS]
        await application.bot.set_my_commands(
            commands, scope=BotCommandScopeDefault(), language_code=lang
        )
    await application.bot.set_my_commands(
        [BotCommand(c.name, c.description(services.settings.LANGUAGE)) for c in COMMANDS]
    )


async def on_error(update: object, context: Context) -> None:
    """Log the failure with an id; tell the user one short sentence carrying that id."""
    error_id = uuid.uuid4().hex[:8]
    log.error("error %s while handling %r", error_id, update, exc_info=context.error)
    if isinstance(update, Update) and update.effective_message is not None:
        lang = guess_lang(update, context.services.settings.LANGUAGE)
        try:
            await reply(update, t(lang, "error", error_id=error_id))
        except Exception:  # noqa: BLE001 - the user may be unreachable; the log has it
            log.warning("error %s: could not tell the user", error_id)
