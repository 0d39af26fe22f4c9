"""A small synchronous Bot API client for the delivery jobs.

The bot itself talks through python-telegram-bot (asyncio); the jobs run in
Dramatiq's worker threads, so they use this plain client over httpx instead:
one `httpx.Client` per process, safe to share between threads. The URL is
built as python-telegram-bot builds it: `base_url + token + "/" + method`,
so TELEGRAM_API_URL serves both (and the local Bot API server in tests).

Telegram's answers become exceptions the delivery rules act on:

    429 (or any answer with parameters.retry_after)  → RetryAfter(seconds)
    403                                              → Forbidden
    400, 409                                         → BadRequest(description)
    5xx, 401/404 (a wrong token or URL), time-outs,
    connection errors, an answer that is not JSON    → Transient
"""

from __future__ import annotations

import json
from typing import Any

import httpx

#: Seconds to open a connection to the Bot API.
CONNECT_TIMEOUT = 5.0  # seconds
#: Seconds to wait for each read or write of a call (an upload included).
CALL_TIMEOUT = 10.0  # seconds
#: Seconds to wait for a free connection from the pool.
POOL_TIMEOUT = 10.0  # seconds
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


class BotApi:
    """Bot API calls with Telegram's errors mapped to exceptions.

    Parameters:
        base_url: TELEGRAM_API_URL, e.g. "https://api.telegram.org/bot".
        token: the bot's token (BOT_TOKEN).
        transport: an httpx transport, for tests.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        max_connections: int = MAX_CONNECTIONS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._prefix = f"{base_url}{token}/"
        self._http = httpx.Client(
            timeout=httpx.Timeout(CALL_TIMEOUT, connect=CONNECT_TIMEOUT, pool=POOL_TIMEOUT),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

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
    ) -> httpx.Request:
        """The encoded request for `method`, to `send` later (right after the
        flood limiter allows it, with nothing left to do in between)."""
        url = self._prefix + method
        values = {key: value for key, value in (params or {}).items() if value is not None}
        if files:
            form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
            return self._http.build_request("POST", url, data=form, files=files)
        return self._http.build_request("POST", url, json=values)

    def send(self, request: httpx.Request) -> Any:
        """Send a prepared request; return Telegram's `result` (raises as `call`)."""
        method = request.url.path.rsplit("/", 1)[-1]
        try:
            response = self._http.send(request)
        except httpx.TimeoutException as exc:
            raise Transient(f"{method}: timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise Transient(f"{method}: {type(exc).__name__}: {exc}") from exc
        return _result(method, response)

    # -- the methods the jobs use ------------------------------------------------------

    def send_message(
        self, chat_id: int, text: str, reply_markup: dict[str, Any] | None = None
    ) -> int:
        """sendMessage; returns the new message's id."""
        return self.sent_id(self.send(self.message(chat_id, text, reply_markup)))

    def message(
        self, chat_id: int, text: str, reply_markup: dict[str, Any] | None = None
    ) -> httpx.Request:
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


def _result(method: str, response: httpx.Response) -> Any:
    # Telegram's JSON answer → its result, or the exception its error maps to.
    try:
        body = response.json()
    except ValueError:
        raise Transient(f"{method}: HTTP {response.status_code}, not a Bot API answer") from None
    if not isinstance(body, dict):
        raise Transient(f"{method}: HTTP {response.status_code}, not a Bot API answer")
    if body.get("ok"):
        return body.get("result")
    status = int(body.get("error_code") or response.status_code)
    description = str(body.get("description") or f"HTTP {status}")
    parameters = body.get("parameters") or {}
    if status == 429 or "retry_after" in parameters:
        raise RetryAfter(description, max(1, int(parameters.get("retry_after", 1))))
    if status == 403:
        raise Forbidden(description)
    if status in (400, 409):
        raise BadRequest(description)
    raise Transient(f"{method}: {description}")
