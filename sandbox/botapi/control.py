"""The sandbox's own JSON API under /_sandbox/, for the web chat (never for the bot).

    GET  /_sandbox/bot                          the bot's account
    GET  /_sandbox/users                        users
    POST /_sandbox/users                        {"id", "first_name", "username"?, "language_code"?}
    GET  /_sandbox/chats                        chats, with member ids
    POST /_sandbox/chats                        {"id" (< 0), "title", "type"?, "members"?}
    GET  /_sandbox/chats/{chat_id}/messages     ?since=REVISION&timeout=SECONDS
    POST /_sandbox/chats/{chat_id}/actions      a user's action (JSON, or multipart with "file")
    GET  /_sandbox/callback_queries/{query_id}  a press and the bot's answer, ?timeout=SECONDS
    GET  /_sandbox/files/{file_id}              a file's bytes

Answers are `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`.
Messages carry a `revision`; asking with `since` returns only messages created,
edited or deleted after it, and `timeout` waits for the next change.
Actions: {"type": "text", "user_id", "text", "reply_to"?}, {"type": "location",
"user_id", "latitude", "longitude"}, {"type": "press", "user_id", "message_id",
"data"}; multipart fields type=photo|document|voice|video, user_id, caption?,
and the file in "file". A press answers its `callback_query_id`; asking for that
query with a `timeout` waits until the bot has answered it (its text and
show_alert are what the Telegram app would show as a toast or an alert).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from sandbox.botapi.client import SandboxClient
from sandbox.botapi.records import JSON, CallbackQueryRecord, MessageRecord

#: Longest wait a messages request may ask for.
MAX_WAIT = 30.0  # seconds
#: Prefix of every control route.
PREFIX = "/_sandbox"


class ControlError(Exception):
    """A refused control request."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def message_to_control(record: MessageRecord) -> JSON:
    """A message as the web chat shows it: the Bot API Message plus its history."""
    data = record.to_api()
    data.update(
        {
            "revision": record.revision,
            "from_bot": record.from_bot,
            "deleted": record.deleted,
            "source_text": record.text,
            "parse_mode": record.parse_mode,
            "edit_count": len(record.edits),
        }
    )
    return data


def _answer_to_control(query: CallbackQueryRecord) -> JSON:
    # What the user's app shows after a press: nothing yet, a toast, or an alert.
    return {
        "id": query.id,
        "data": query.data,
        "message_id": query.message.message_id,
        "answered": query.answered,
        "text": query.answer_text,
        "show_alert": query.show_alert,
        "url": query.answer_url,
    }


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ControlError(400, f"{name} must be an integer") from None


class ControlApi:
    """Route handlers over one client."""

    def __init__(self, client: SandboxClient) -> None:
        self.client = client
        self.world = client.world

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the server's application."""
        return [
            web.get(f"{PREFIX}/bot", self._wrap(self.bot)),
            web.get(f"{PREFIX}/users", self._wrap(self.users)),
            web.post(f"{PREFIX}/users", self._wrap(self.add_user)),
            web.get(f"{PREFIX}/chats", self._wrap(self.chats)),
            web.post(f"{PREFIX}/chats", self._wrap(self.add_chat)),
            web.get(f"{PREFIX}/chats/{{chat_id}}/messages", self._wrap(self.messages)),
            web.post(f"{PREFIX}/chats/{{chat_id}}/actions", self._wrap(self.act)),
            web.get(f"{PREFIX}/callback_queries/{{query_id}}", self._wrap(self.callback_query)),
            web.get(f"{PREFIX}/files/{{file_id}}", self.file),
        ]

    def _wrap(self, handler: Any) -> Any:
        async def respond(request: web.Request) -> web.Response:
            try:
                return _ok(await handler(request))
            except ControlError as exc:
                return web.json_response({"ok": False, "error": exc.reason}, status=exc.status)
            except (KeyError, ValueError) as exc:
                return web.json_response({"ok": False, "error": str(exc)}, status=400)

        return respond

    async def bot(self, request: web.Request) -> JSON:
        """The bot's account."""
        return self.world.bot.to_api()

    async def users(self, request: web.Request) -> list[JSON]:
        """Every user."""
        with self.world.lock:
            return [user.to_api() for user in self.world.users.values()]

    async def add_user(self, request: web.Request) -> JSON:
        """Create or update a user."""
        body = await _json_body(request)
        user = self.client.user(
            _int(body.get("id"), "id"),
            str(body.get("first_name") or ""),
            body.get("username"),
            body.get("language_code", "zh"),
        )
        return user.to_api()

    async def chats(self, request: web.Request) -> list[JSON]:
        """Every chat, with its members."""
        with self.world.lock:
            return [
                {**chat.to_api(), "members": sorted(chat.member_ids)}
                for chat in self.world.chats.values()
            ]

    async def add_chat(self, request: web.Request) -> JSON:
        """Create or update a group."""
        body = await _json_body(request)
        members = [_int(member, "members") for member in body.get("members", [])]
        chat = self.client.group(
            _int(body.get("id"), "id"),
            str(body.get("title") or ""),
            members,
            type=str(body.get("type", "group")),
        )
        return {**chat.to_api(), "members": sorted(chat.member_ids)}

    async def messages(self, request: web.Request) -> JSON:
        """Messages changed after `since`, waiting up to `timeout` for one."""
        chat = self._chat(request)
        since = _int(request.query.get("since", 0), "since")
        timeout = min(float(request.query.get("timeout", 0) or 0), MAX_WAIT)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            with self.world.lock:
                version = self.world.changes.version
                changed = [
                    message_to_control(record)
                    for record in chat.messages.values()
                    if record.revision > since
                ]
                revision = self.world.revision
            remaining = deadline - asyncio.get_running_loop().time()
            if changed or remaining <= 0 or self.world.closed:
                return {"revision": revision, "messages": changed}
            await self.world.changes.wait(version, remaining)

    async def act(self, request: web.Request) -> JSON:
        """Perform one user action in the chat."""
        chat = self._chat(request)
        if request.content_type == "multipart/form-data":
            return await self._upload(request, chat.id)
        body = await _json_body(request)
        user = _int(body.get("user_id"), "user_id")
        kind = body.get("type")
        if kind == "text":
            reply_to = body.get("reply_to")
            record = self.client.send_text(
                user,
                str(body.get("text") or ""),
                chat=chat,
                reply_to=_int(reply_to, "reply_to") if reply_to is not None else None,
            )
        elif kind == "location":
            record = self.client.send_location(
                user, float(body["latitude"]), float(body["longitude"]), chat=chat
            )
        elif kind == "press":
            query = self.client.press(
                user, _int(body.get("message_id"), "message_id"), str(body.get("data")), chat=chat
            )
            return {"callback_query_id": query.id}
        else:
            raise ControlError(400, f"unknown action type {kind!r}")
        return message_to_control(record)

    async def callback_query(self, request: web.Request) -> JSON:
        """A press and the bot's answer, waiting up to `timeout` for the answer."""
        query_id = request.match_info["query_id"]
        timeout = min(float(request.query.get("timeout", 0) or 0), MAX_WAIT)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            with self.world.lock:
                version = self.world.changes.version
                query = self.world.callback_queries.get(query_id)
                if query is None:
                    raise ControlError(404, f"no callback query {query_id}")
                answer = _answer_to_control(query)
            remaining = deadline - asyncio.get_running_loop().time()
            if answer["answered"] or remaining <= 0 or self.world.closed:
                return answer
            await self.world.changes.wait(version, remaining)

    async def _upload(self, request: web.Request, chat_id: int) -> JSON:
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, FileField):
            raise ControlError(400, "a file is expected in the 'file' field")
        data = upload.file.read()
        user = _int(form.get("user_id"), "user_id")
        caption = form.get("caption")
        caption_text = caption if isinstance(caption, str) and caption else None
        kind = form.get("type")
        if kind == "photo":
            record = self.client.send_photo(user, data, caption_text, chat=chat_id)
        elif kind == "document":
            record = self.client.send_document(
                user,
                data,
                upload.filename or "document",
                upload.content_type,
                caption_text,
                chat=chat_id,
            )
        elif kind == "voice":
            record = self.client.send_voice(user, data, chat=chat_id)
        elif kind == "video":
            record = self.client.send_video(user, data, caption=caption_text, chat=chat_id)
        else:
            raise ControlError(400, f"unknown upload type {kind!r}")
        return message_to_control(record)

    async def file(self, request: web.Request) -> web.StreamResponse:
        """A file's bytes, with its MIME type."""
        stored = self.world.files.get(request.match_info["file_id"])
        if stored is None:
            return web.json_response({"ok": False, "error": "no such file"}, status=404)
        return web.Response(
            body=stored.data, content_type=stored.mime_type or "application/octet-stream"
        )

    def _chat(self, request: web.Request) -> Any:
        chat_id = _int(request.match_info["chat_id"], "chat_id")
        if chat_id not in self.world.chats:
            raise ControlError(404, f"no chat {chat_id}")
        return self.world.chats[chat_id]


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ControlError(400, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ControlError(400, "the body must be a JSON object")
    return body
