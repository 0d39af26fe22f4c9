"""The web chat of `closeout sandbox`: one page, and the JSON it talks to.

    GET  /                        the page (static/index.html; app.js and style.css beside it)
    GET  /api/people              who you can be: the demo's bound members and their chats
    GET  /api/activity            ?since=REVISION&timeout=SECONDS: the bot's message count
                                  per chat, once something changed after REVISION
    GET  /api/clock               the product's clock
    POST /api/clock               {"by": "day"|"workday"|"week"} or {"to": "YYYY-MM-DD"}:
                                  move it, firing what the calendar fires in between
    *    /_sandbox/...            the local Bot API server's control API (see
                                  sandbox.botapi.control), over the same world: users,
                                  chats, messages since a revision, actions, presses, files

Everything is served from this one aiohttp application on loopback; the page
loads nothing from anywhere else and needs no build step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from aiohttp import web

from sandbox.botapi.client import SandboxClient
from sandbox.botapi.control import MAX_WAIT, ControlApi
from sandbox.botapi.records import Chat
from sandbox.demo import Cast, Person
from sandbox.timeline import Busy, ClockRefused, Moved

#: The page's files.
STATIC_DIR = Path(__file__).parent / "static"
#: Largest upload the page may send (Telegram's bots download up to 20 MB; users send more).
MAX_UPLOAD = 52 * 1024 * 1024  # bytes

_Handler = Callable[[web.Request], Any]


class TimeControl(Protocol):
    """What the page's clock control needs (sandbox.timeline.Timeline)."""

    zone: ZoneInfo
    moving: bool

    def status(self) -> dict[str, Any]: ...

    def advance(self, *, by: str | None = None, to: date | None = None) -> Moved: ...


def make_app(client: SandboxClient, cast: Cast, control: TimeControl) -> web.Application:
    """The page, its API and the control API over `client`'s world."""
    page = _Page(client, cast, control)
    app = web.Application(client_max_size=MAX_UPLOAD)
    app.add_routes(ControlApi(client).routes())
    app.add_routes(
        [
            web.get("/", page.index),
            web.get("/api/people", _json(page.people)),
            web.get("/api/activity", _json(page.activity)),
            web.get("/api/clock", _json(page.clock)),
            web.post("/api/clock", _json(page.move_clock)),
            web.static("/static", STATIC_DIR, append_version=False),
        ]
    )
    return app


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _json(handler: _Handler) -> _Handler:
    # The control API's answer shape: {"ok": true, "result": …} or {"ok": false, "error": …}.
    async def respond(request: web.Request) -> web.Response:
        try:
            result = await handler(request)
        except _Refused as refused:
            return web.json_response({"ok": False, "error": refused.reason}, status=refused.status)
        return web.json_response({"ok": True, "result": result})

    return respond


class _Page:
    def __init__(self, client: SandboxClient, cast: Cast, control: TimeControl) -> None:
        self.client = client
        self.world = client.world
        self.cast = cast
        self.control = control

    async def index(self, request: web.Request) -> web.FileResponse:
        """The page."""
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def people(self, request: web.Request) -> dict[str, Any]:
        """The people one can be, each with their chats (private first, then groups)."""
        bot = self.world.bot
        return {
            "bot": {"id": bot.id, "name": bot.first_name, "username": bot.username},
            "people": [self._person(person) for person in self.cast.people],
        }

    def _person(self, person: Person) -> dict[str, Any]:
        chats = [{"id": person.user_id, "title": self.world.bot.first_name, "type": "private"}]
        chats += [
            {"id": group.chat_id, "title": group.title, "type": "group"}
            for group in self.cast.groups
            if person.code in group.member_codes
        ]
        return {
            "user_id": person.user_id,
            "code": person.code,
            "name": person.name,
            "role": person.role,
            "roles": list(person.roles),
            "org_code": person.org_code,
            "org_name": person.org_name,
            "chats": chats,
        }

    async def activity(self, request: web.Request) -> dict[str, Any]:
        """The bot's messages per chat, once the world changed after `since`."""
        since = _integer(request.query.get("since", "0"), "since")
        timeout = min(_number(request.query.get("timeout", "0"), "timeout"), MAX_WAIT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self.world.lock:
                version = self.world.changes.version
                revision = self.world.revision
                counts = {str(chat.id): _bot_messages(chat) for chat in self.world.chats.values()}
            remaining = deadline - loop.time()
            if revision > since or remaining <= 0 or self.world.closed:
                return {"revision": revision, "chats": counts}
            await self.world.changes.wait(version, remaining)

    async def clock(self, request: web.Request) -> dict[str, Any]:
        """The product's clock."""
        return self.control.status()

    async def move_clock(self, request: web.Request) -> dict[str, Any]:
        """Move the clock forward; answers when every firing in between has run."""
        try:
            body = await request.json()
        except ValueError:
            raise _Refused(400, "the body must be a JSON object") from None
        if not isinstance(body, dict):
            raise _Refused(400, "the body must be a JSON object")
        by, to = body.get("by"), body.get("to")
        day = None
        if to is not None:
            try:
                day = date.fromisoformat(str(to))
            except ValueError:
                raise _Refused(400, f"{to!r} is not a date (YYYY-MM-DD)") from None
        try:
            moved = await asyncio.to_thread(
                self.control.advance, by=str(by) if by is not None else None, to=day
            )
        except ClockRefused as refused:
            raise _Refused(400, str(refused)) from None
        except Busy as busy:
            raise _Refused(409, str(busy)) from None
        return {"clock": self.control.status(), "moved": moved.as_dict(self.control.zone)}


def _bot_messages(chat: Chat) -> int:
    return sum(1 for record in chat.messages.values() if record.from_bot and not record.deleted)


def _integer(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise _Refused(400, f"{name} must be an integer") from None


def _number(value: str, name: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise _Refused(400, f"{name} must be a number") from None
