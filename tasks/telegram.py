"""A small synchronous Bot API client for the delivery jobs.

The bot itself talks through python-telegram-bot (asyncio); the jobs run in
Dramatiq's worker threads, so they use this plain client over urllib3 instead:
one connection pool per process, safe to share between threads. urllib3, not
httpx: a fan-out makes one call per message, and httpx's request building and
sending cost the worker about twice urllib3's CPU per call (bench/fanout.py,
README). The URL is built as python-telegram-bot builds it: `base_url + token +
"/" + method`, so TELEGRAM_API_URL serves both (and the local Bot API server in
tests).

Telegram's answers become exceptions the delivery rules act on:

    429 (or any answer with parameters.retry_after)  → RetryAfter(seconds)
    403                                              → Forbidden
    400, 409                                         → BadRequest(description)
    5xx, 401/404 (a wrong token or URL), time-outs,
    connection errors, an answer that is not JSON    → Transient
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import urllib3
from urllib3.exceptions import HTTPError
from urllib3.exceptions import TimeoutError as TimedOut

#: Seconds to open a connection to the Bot API.
CONNECT_TIMEOUT = 5.0  # seconds
#: Seconds to wait for each read or write of a call (an upload included).
CALL_TIMEOUT = 10.0  # seconds
#: Seconds to wait for a free connection from the pool.
POOL_TIMEOUT = 10  # seconds
#: Longest one call can take before it is given up: the delivery jobs' claim on
#: a notification must outlast it (models.delivery.CLAIM_LEASE).
CALL_DEADLINE = CONNECT_TIMEOUT + 2 * CALL_TIMEOUT  # seconds
#: Connections kept open per process (one per worker thread is plenty).
MAX_CONNECTIONS = 32


class TelegramError(Exception):
    """The Bot API refused or could not be reached; `description` says why."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class RetryAfter(TelegramError):
    """429 Too Many Requests: wait `seconds` before the next call."""

    def __init__(self, description: str, seconds: int) -> None:
        super().__init__(description)
        self.seconds = seconds


class Forbidden(TelegramError):
    """403: the user blocked the bot or never started it, or the bot left the group."""


class BadRequest(TelegramError):
    """400: the call itself is wrong (chat not found, text too long, message not modified)."""


class Transient(TelegramError):
    """5xx, a time-out or a broken connection: the same call may work later."""


@dataclass(frozen=True)
class Request:
    """A call encoded and ready to send: its method, body and content type."""

    method: str
    body: bytes
    content_type: str


class BotApi:
    """Bot API calls with Telegram's errors mapped to exceptions.

    Parameters:
        base_url: TELEGRAM_API_URL, e.g. "https://api.telegram.org/bot".
        token: the bot's token (BOT_TOKEN).
        call_timeout: seconds for each read or write of a call (CALL_TIMEOUT).
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        max_connections: int = MAX_CONNECTIONS,
        call_timeout: float = CALL_TIMEOUT,
    ) -> None:
        prefix = f"{base_url}{token}/"
        self._http = urllib3.PoolManager(
            maxsize=max_connections,
            block=True,  # past maxsize a thread waits (POOL_TIMEOUT) for a connection
            timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=call_timeout),
            retries=False,  # the delivery rules retry, with Telegram's answer in hand
        )
        # The pool of the Bot API's host, found once: not a URL parsed per call.
        self._pool = self._http.connection_from_url(prefix)
        self._path = urllib3.util.parse_url(prefix).path or "/"

    def close(self) -> None:
        self._http.clear()

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> Any:
        """Call `method`; return Telegram's `result`.

        Without files the parameters go as JSON; with files as multipart form
        data, where nested values (reply_markup) are JSON-encoded strings.

        Raises:
            RetryAfter, Forbidden, BadRequest, Transient (see the module's table).
        """
        return self.send(self.prepare(method, params, files))

    def prepare(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> Request:
        """The encoded request for `method`, to `send` later (right after the
        flood limiter allows it, with nothing left to do in between)."""
        values = {key: value for key, value in (params or {}).items() if value is not None}
        if files:
            fields: dict[str, Any] = {
                k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()
            }
            fields.update(files)
            body, content_type = urllib3.encode_multipart_formdata(fields)
            return Request(method, body, content_type)
        return Request(method, json.dumps(values).encode(), "application/json")

    def send(self, request: Request) -> Any:
        """Send a prepared request; return Telegram's `result` (raises as `call`)."""
        method = request.method
        try:
            response = self._pool.urlopen(
                "POST",
                self._path + method,
                body=request.body,
                headers={"Content-Type": request.content_type},
                pool_timeout=POOL_TIMEOUT,
            )
        except TimedOut as exc:
            raise Transient(f"{method}: timed out ({type(exc).__name__})") from exc
        except HTTPError as exc:
            raise Transient(f"{method}: {type(exc).__name__}: {exc}") from exc
        return _result(method, response.status, response.data)

    # -- the methods the jobs use ------------------------------------------------------

    def send_message(
        self, chat_id: int, text: str, reply_markup: dict[str, Any] | None = None
    ) -> int:
        """sendMessage; returns the new message's id."""
        return self.sent_id(self.send(self.message(chat_id, text, reply_markup)))

    def message(
        self, chat_id: int, text: str, reply_markup: dict[str, Any] | None = None
    ) -> Request:
        """A prepared sendMessage (link previews off); `send` it, then `sent_id`."""
        return self.prepare(
            "sendMessage",
            {
                "chat_id": chat_id,
                "text": text,
                "reply_markup": reply_markup,
                "link_preview_options": {"is_disabled": True},
            },
        )

    @staticmethod
    def sent_id(result: Any) -> int:
        """The message id in a send's result."""
        return int(result["message_id"])

    def edit_message_text(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        reply_markup: dict[str, Any] | None = None,
    ) -> None:
        """editMessageText: new text and keyboard for a message the bot sent."""
        self.call(
            "editMessageText",
            {
                "chat_id": chat_id,
                "message_id": message_id,
                "text": text,
                "reply_markup": reply_markup,
                "link_preview_options": {"is_disabled": True},
            },
        )

    def send_document(
        self,
        chat_id: int,
        file_name: str,
        content: bytes,
        mime_type: str = "application/octet-stream",
        caption: str | None = None,
    ) -> int:
        """sendDocument with the bytes uploaded; returns the new message's id."""
        result = self.call(
            "sendDocument",
            {"chat_id": chat_id, "caption": caption},
            files={"document": (file_name, content, mime_type)},
        )
        return int(result["message_id"])

    def send_photo(
        self,
        chat_id: int,
        file_name: str,
        content: bytes,
        mime_type: str = "image/png",
        caption: str | None = None,
    ) -> int:
        """sendPhoto with the image uploaded; returns the new message's id."""
        result = self.call(
            "sendPhoto",
            {"chat_id": chat_id, "caption": caption},
            files={"photo": (file_name, content, mime_type)},
        )
        return int(result["message_id"])


def _result(method: str, status_code: int, content: bytes) -> Any:
    # Telegram's JSON answer → its result, or the exception its error maps to.
    try:
        body = json.loads(content)
    except ValueError:
        raise Transient(f"{method}: HTTP {status_code}, not a Bot API answer") from None
    if not isinstance(body, dict):
        raise Transient(f"{method}: HTTP {status_code}, not a Bot API answer")
    if body.get("ok"):
        return body.get("result")
    status = int(body.get("error_code") or status_code)
    description = str(body.get("description") or f"HTTP {status}")
    parameters = body.get("parameters") or {}
    if status == 429 or "retry_after" in parameters:
        raise RetryAfter(description, max(1, int(parameters.get("retry_after", 1))))
    if status == 403:
        raise Forbidden(description)
    if status in (400, 409):
        raise BadRequest(description)
    raise Transient(f"{method}: {description}")
