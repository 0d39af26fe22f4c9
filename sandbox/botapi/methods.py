"""The Bot API methods the sandbox serves, by name.

Telegram's method names are case-insensitive, so the table is keyed by the
lower-cased name. A handler takes (Context, Params) and returns the `result`
(or an awaitable of it); it raises `ApiError` to fail.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sandbox.botapi import botinfo, messaging, updates
from sandbox.botapi.context import Context
from sandbox.botapi.params import Params

Handler = Callable[[Context, Params], Any | Awaitable[Any]]

#: Every method, under its Bot API name.
METHODS: dict[str, Handler] = {
    # the bot
    "getMe": botinfo.get_me,
    "logOut": botinfo.log_out,
    "close": botinfo.log_out,
    "setMyCommands": botinfo.set_my_commands,
    "getMyCommands": botinfo.get_my_commands,
    "deleteMyCommands": botinfo.delete_my_commands,
    "getChat": botinfo.get_chat,
    "setChatMenuButton": botinfo.set_chat_menu_button,
    "getChatMenuButton": botinfo.get_chat_menu_button,
    # updates
    "getUpdates": updates.get_updates,
    "setWebhook": updates.set_webhook,
    "deleteWebhook": updates.delete_webhook,
    "getWebhookInfo": updates.get_webhook_info,
    # messages and files
    "sendMessage": messaging.send_message,
    "sendPhoto": messaging.send_photo,
    "sendDocument": messaging.send_document,
    "sendChatAction": messaging.send_chat_action,
    "editMessageText": messaging.edit_message_text,
    "editMessageCaption": messaging.edit_message_caption,
    "editMessageReplyMarkup": messaging.edit_message_reply_markup,
    "deleteMessage": messaging.delete_message,
    "answerCallbackQuery": messaging.answer_callback_query,
    "getFile": messaging.get_file,
}

_BY_LOWER_NAME = {name.lower(): (name, handler) for name, handler in METHODS.items()}


def find_method(name: str) -> tuple[str, Handler] | None:
    """The Bot API name and handler of a method, whatever the case given; None if unknown."""
    return _BY_LOWER_NAME.get(name.lower())
