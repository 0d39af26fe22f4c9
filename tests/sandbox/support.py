"""Helpers shared by the sandbox tests."""

from __future__ import annotations

import datetime as dtm
from collections.abc import Sequence
from typing import Any

import telegram
from telegram.ext import Application, Updater

from sandbox.botapi import BotApiServer

#: Users of the sandbox tests (ids are their private chat ids).
ALICE_ID = 101
BOB_ID = 102
#: A group chat both are in.
GROUP_ID = -1001


def make_bot(server: BotApiServer, token: str | None = None) -> telegram.Bot:
    """A PTB Bot for `server` (with another token to test refusals)."""
    return telegram.Bot(
        token or server.token, base_url=server.base_url, base_file_url=server.file_url
    )


def seconds(value: int | dtm.timedelta) -> float:
    """A PTB duration (int or timedelta, depending on PTB_TIMEDELTA) in seconds."""
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def message_of(update: telegram.Update) -> telegram.Message:
    """The update's message (asserting it has one)."""
    assert update.message is not None, update
    return update.message


def texts(updates: Sequence[telegram.Update]) -> list[str | None]:
    """The text of each update's message."""
    return [message_of(update).text for update in updates]


def query_of(update: telegram.Update) -> telegram.CallbackQuery:
    """The update's callback query (asserting it has one)."""
    assert update.callback_query is not None, update
    return update.callback_query


def returned_message(result: telegram.Message | bool) -> telegram.Message:
    """The Message an edit returns (True only for inline messages, which we do not use)."""
    assert isinstance(result, telegram.Message), result
    return result


def updater_of(app: Application[Any, Any, Any, Any, Any, Any]) -> Updater:
    """The application's Updater (asserting it was built with one)."""
    assert app.updater is not None
    return app.updater
