"""The bot's HTTP client for the Bot API: python-telegram-bot's request on aiohttp.

PTB ships only HTTPXRequest; httpx cost 0.65–0.9 ms of CPU per Bot API call
in the bot's profile, against ~0.2 ms for aiohttp on the same server, and
every update costs at least one call. `AiohttpRequest` does what HTTPXRequest
does for PTB: its `do_request` returns the status and body, and PTB's
`BaseRequest.post` turns them into its errors (BadRequest, Forbidden,
RetryAfter with retry_after, …), so nothing above it changes.

Timeouts mean what they mean for HTTPXRequest, with one difference aiohttp
imposes: it has no write timeout, so a call as a whole is bounded by
connect + write + read (the body is written before the read timeout starts).
The connection pool has `connection_pool_size` connections, and a call that
waits longer than `pool_timeout` for one fails with PTB's "Pool timeout"
TimedOut, not sent, as with httpx.
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

log = logging.getLogger(__name__)

#: PTB's own words for a call that found no free connection (HTTPXRequest's).
POOL_TIMEOUT_MESSAGE = (
    "Pool timeout: All connections in the connection pool are occupied. "
    "Request was *not* sent to Telegram. Consider adjusting the connection "
    "pool size or the pool timeout."
)


class AiohttpRequest(BaseRequest):
    """PTB's BaseRequest on one aiohttp session; the arguments and defaults are HTTPXRequest's."""

    __slots__ = (
        "_connect_timeout",
        "_media_write_timeout",
        "_pool_size",
        "_pool_timeout",
        "_read_timeout",
        "_session",
        "_slots",
        "_write_timeout",
    )

    def __init__(
        self,
        connection_pool_size: int = 256,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        # Both need the running event loop: made by initialize().
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is not None and not self._session.closed:
            return
        # The pool's limit is kept by our semaphore, so that waiting for a
        # connection has its own timeout; the connector's limit only backs it.
        connector = aiohttp.TCPConnector(limit=self._pool_size)
        self._session = aiohttp.ClientSession(connector=connector)
        self._slots = asyncio.Semaphore(self._pool_size)

    async def shutdown(self) -> None:
        if self._session is None or self._session.closed:
            log.debug("this AiohttpRequest is already shut down")
            return
        await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        session, slots = self._session, self._slots
        if session is None or slots is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.contains_files if request_data else False
        read = self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        connect = (
            self._connect_timeout if isinstance(connect_timeout, DefaultValue) else connect_timeout
        )
        pool = self._pool_timeout if isinstance(pool_timeout, DefaultValue) else pool_timeout
        if isinstance(write_timeout, DefaultValue):
            write = self._media_write_timeout if files else self._write_timeout
        else:
            write = write_timeout
        timeout = aiohttp.ClientTimeout(
            total=_bound(connect, write, read), sock_connect=connect, sock_read=read
        )

        if slots.locked():
            try:
                async with asyncio.timeout(pool):
                    await slots.acquire()
            except TimeoutError as err:
                raise TimedOut(message=POOL_TIMEOUT_MESSAGE) from err
        else:
            await slots.acquire()
        try:
            async with session.request(
                method,
                url,
                data=_body(request_data),
                headers={"User-Agent": self.USER_AGENT},
                timeout=timeout,
            ) as response:
                return response.status, await response.read()
        except TimeoutError as err:
            raise TimedOut from err
        except aiohttp.ClientError as err:
            # The class name says what failed when the message is empty.
            raise NetworkError(f"aiohttp.{err.__class__.__name__}: {err}") from err
        finally:
            slots.release()


def _bound(*timeouts: float | None) -> float | None:
    """The whole call's limit: the sum of its phases' timeouts, none if one is unbounded."""
    total = 0.0
    for timeout in timeouts:
        if timeout is None:
            return None
        total += timeout
    return total


def _body(request_data: RequestData | None) -> aiohttp.FormData | aiohttp.BytesPayload | None:
    """The parameters as a JSON body, or a multipart form when files go along.

    HTTPXRequest sends a url-encoded form; the Bot API takes JSON as well, and
    url-encoding a reply's text and buttons cost more CPU here than the rest of
    the call (urllib quotes byte by byte, in Python).
    """
    if request_data is None:
        return None
    if not request_data.contains_files:
        return aiohttp.BytesPayload(
            json.dumps(request_data.parameters).encode(), content_type="application/json"
        )
    fields = request_data.json_parameters
    # quote_fields=False: file names go as UTF-8 in quotes, as httpx sends them
    # (quoting would percent-encode 现场照片.pdf into the name the server keeps).
    form = aiohttp.FormData(quote_fields=False)
    for name, value in fields.items():
        form.add_field(name, value)
    for name, (filename, content, mimetype) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form
