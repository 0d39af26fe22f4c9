"""A faithful local Telegram Bot API server for tests and the sandbox.

    from sandbox.botapi import BotApiServer, Limits

    async with BotApiServer(limits=Limits(enabled=False)) as server:
        bot = telegram.Bot(server.token, base_url=server.base_url,
                           base_file_url=server.file_url)
        alice = server.client.user(101, "Alice")
        server.client.send_text(alice, "/start")
        ...

Modules: `server` (HTTP, life cycle, `running_server`), `methods` (the method
table) with `messaging`, `updates`, `botinfo` (the handlers), `state` and
`records` (the world in memory), `client` (the user side), `control` (the web
chat's API), `limits`, `faults`, `webhook`, `entities`, `keyboards`, `files`,
`params`, `errors`, `changes`.
"""

from __future__ import annotations

from sandbox.botapi.client import SandboxClient
from sandbox.botapi.errors import ApiError
from sandbox.botapi.files import tiny_png
from sandbox.botapi.limits import Limits, RateLimiter
from sandbox.botapi.records import CallbackQueryRecord, Chat, MessageRecord, StoredFile, User
from sandbox.botapi.server import (
    DEFAULT_BOT_USERNAME,
    DEFAULT_TOKEN,
    BotApiServer,
    running_server,
)

__all__ = [
    "DEFAULT_BOT_USERNAME",
    "DEFAULT_TOKEN",
    "ApiError",
    "BotApiServer",
    "CallbackQueryRecord",
    "Chat",
    "Limits",
    "MessageRecord",
    "RateLimiter",
    "SandboxClient",
    "StoredFile",
    "User",
    "running_server",
    "tiny_png",
]
