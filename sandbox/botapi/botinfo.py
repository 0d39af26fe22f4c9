"""Bot API methods about the bot itself and its chats.

getMe, logOut, close, the command lists (per scope and language, as
Telegram keeps them), getChat and the chat menu button.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.botapi.context import Context
from sandbox.botapi.errors import bad_request
from sandbox.botapi.params import Params
from sandbox.botapi.records import JSON, Chat, User
from sandbox.botapi.state import World

#: Commands allowed in one list.
MAX_COMMANDS = 100
#: Longest command description.
MAX_COMMAND_DESCRIPTION = 256  # characters
#: Scope types, with the fields that identify each.
SCOPE_FIELDS: dict[str, tuple[str, ...]] = {
    "default": (),
    "all_private_chats": (),
    "all_group_chats": (),
    "all_chat_administrators": (),
    "chat": ("chat_id",),
    "chat_administrators": ("chat_id",),
    "chat_member": ("chat_id", "user_id"),
}
#: Menu button types setChatMenuButton accepts.
MENU_BUTTON_TYPES = ("commands", "web_app", "default")

_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
_LANGUAGE = re.compile(r"(?:[a-z]{2})?")


def get_me(ctx: Context, params: Params) -> JSON:
    """getMe: the bot's User, with the capabilities getMe adds."""
    data = ctx.world.bot.to_api()
    data.update(
        {
            "can_join_groups": True,
            "can_read_all_group_messages": not ctx.world.privacy_mode,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
    )
    return data


def log_out(ctx: Context, params: Params) -> bool:
    """logOut and close: nothing to hand over locally; True."""
    return True


def scope_key(world: World, scope: Any) -> str:
    """A canonical key for a BotCommandScope (chat ids resolved to numbers)."""
    if scope is None:
        return "default"
    if not isinstance(scope, dict) or scope.get("type") not in SCOPE_FIELDS:
        raise bad_request("can't parse BotCommandScope JSON object")
    parts = [scope["type"]]
    for name in SCOPE_FIELDS[scope["type"]]:
        if name not in scope:
            raise bad_request(f"{name} is empty")
        if name == "chat_id":
            parts.append(str(world.find_chat(scope[name]).id))
        else:
            parts.append(str(int(scope[name])))
    return ":".join(parts)


def _language(params: Params) -> str:
    language = params.text("language_code") or ""
    if not _LANGUAGE.fullmatch(language):
        raise bad_request("invalid language code specified")
    return language


def _check_commands(commands: Any) -> list[JSON]:
    if not isinstance(commands, list):
        raise bad_request("can't parse commands JSON object")
    if len(commands) > MAX_COMMANDS:
        raise bad_request("too many commands")
    checked = []
    for command in commands:
        if not isinstance(command, dict):
            raise bad_request("can't parse BotCommand JSON object")
        name = command.get("command")
        description = command.get("description")
        if not isinstance(name, str) or not _COMMAND.fullmatch(name):
            raise bad_request("BOT_COMMAND_INVALID")
        if (
            not isinstance(description, str)
            or not description.strip()
            or len(description) > MAX_COMMAND_DESCRIPTION
        ):
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        checked.append({"command": name, "description": description})
    return checked


def set_my_commands(ctx: Context, params: Params) -> bool:
    """setMyCommands: the list for one scope and language (empty removes it)."""
    commands = params.json("commands")
    if commands is None:
        raise bad_request("commands is empty")
    checked = _check_commands(commands)
    key = (scope_key(ctx.world, params.json("scope")), _language(params))
    if checked:
        ctx.world.commands[key] = checked
    else:
        ctx.world.commands.pop(key, None)
    ctx.world.changes.bump()
    return True


def get_my_commands(ctx: Context, params: Params) -> list[JSON]:
    """getMyCommands: exactly the list set for this scope and language."""
    key = (scope_key(ctx.world, params.json("scope")), _language(params))
    return list(ctx.world.commands.get(key, []))


def delete_my_commands(ctx: Context, params: Params) -> bool:
    """deleteMyCommands: remove the list for this scope and language."""
    key = (scope_key(ctx.world, params.json("scope")), _language(params))
    ctx.world.commands.pop(key, None)
    ctx.world.changes.bump()
    return True


def visible_commands(world: World, chat: Chat, user: User) -> list[JSON]:
    """The commands `user` sees in `chat`: Telegram's order of scopes, language first."""
    if chat.is_group:
        scopes = [
            f"chat_member:{chat.id}:{user.id}",
            f"chat:{chat.id}",
            "all_group_chats",
            "default",
        ]
    else:
        scopes = [f"chat:{chat.id}", "all_private_chats", "default"]
    language = user.language_code or ""
    for scope in scopes:
        for code in (language, ""):
            if (scope, code) in world.commands:
                return list(world.commands[(scope, code)])
    return []


def get_chat(ctx: Context, params: Params) -> JSON:
    """getChat: the ChatFullInfo python-telegram-bot expects."""
    chat = ctx.world.find_chat(params.chat_id())
    data = chat.to_api()
    data.update(
        {
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }
    )
    return data


def set_chat_menu_button(ctx: Context, params: Params) -> bool:
    """setChatMenuButton: for one private chat, or the default when chat_id is absent."""
    chat_id = ctx.world.find_chat(params.chat_id()).id if "chat_id" in params else None
    button = params.json("menu_button") or {"type": "default"}
    if not isinstance(button, dict) or button.get("type") not in MENU_BUTTON_TYPES:
        raise bad_request("can't parse menu button JSON object")
    ctx.world.menu_buttons[chat_id] = button
    return True


def get_chat_menu_button(ctx: Context, params: Params) -> JSON:
    """getChatMenuButton: the chat's button, else the default, else "commands"."""
    chat_id = ctx.world.find_chat(params.chat_id()).id if "chat_id" in params else None
    for key in (chat_id, None):
        button = ctx.world.menu_buttons.get(key)
        if button is not None and button.get("type") != "default":
            return button
    return {"type": "commands"}
