"""The local Bot API server: real HTTP on loopback, speaking Telegram's JSON.

    /bot<token>/<method>        the Bot API (GET or POST; query, JSON, form or multipart)
    /file/bot<token>/<path>     files, as getFile's file_path points to them
    /_sandbox/...               the web chat's control API (see control.py)

Point python-telegram-bot at `base_url` and `file_url`; act as users through
`client`. A wrong token answers 401 Unauthorized, an unknown method 404 Not
Found, exactly as Telegram does.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from sandbox.botapi.client import SandboxClient
from sandbox.botapi.context import Context
from sandbox.botapi.control import ControlApi
from sandbox.botapi.errors import ApiError, status_error
from sandbox.botapi.faults import Faults
from sandbox.botapi.limits import Limits, RateLimiter
from sandbox.botapi.methods import find_method
from sandbox.botapi.params import read_params
from sandbox.botapi.state import World
from sandbox.botapi.webhook import WebhookPusher

#: Where the server listens unless told otherwise.
DEFAULT_HOST = "127.0.0.1"
#: The token the sandbox's bot answers to unless given another.
DEFAULT_TOKEN = "7000000001:AAsandbox-local-token-not-a-secret"
#: The bot's @username in the sandbox.
DEFAULT_BOT_USERNAME = "closeout_sandbox_bot"
#: The bot's display name in the sandbox.
DEFAULT_BOT_NAME = "Closeout"
#: Time a bot has to answer a callback query before it is "too old".
CALLBACK_ANSWER_WINDOW = 15.0  # seconds
#: Largest request body (50 MB uploads plus the form around them).
MAX_REQUEST_SIZE = 52 * 1024 * 1024  # bytes
#: How long stop() lets open requests finish.
SHUTDOWN_TIMEOUT = 1.0  # seconds
#: How long running_server waits for the thread's server to start or stop.
THREAD_TIMEOUT = 10.0  # seconds

_dumps = functools.partial(json.dumps, ensure_ascii=False)


class BotApiServer:
    """A Bot API server on loopback with an in-memory world.

    Parameters:
        host, port: where to listen; port 0 picks a free port (see `port`).
        token: the one bot token accepted.
        limits: flood limits on sends (default: Telegram's, enforced).
        bot_username, bot_name: what getMe answers.
        callback_answer_window: seconds to answer a callback query.
        privacy_mode: in groups, the bot sees only commands and replies to it.
        clock: Unix seconds for message dates (default time.time; the sandbox
            passes its product clock, so a moved clock dates the messages).
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        token: str = DEFAULT_TOKEN,
        limits: Limits | None = None,
        *,
        bot_username: str = DEFAULT_BOT_USERNAME,
        bot_name: str = DEFAULT_BOT_NAME,
        callback_answer_window: float = CALLBACK_ANSWER_WINDOW,
        privacy_mode: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.world = World(
            token, bot_username, bot_name, callback_answer_window, privacy_mode, clock=clock
        )
        self.limiter = RateLimiter(limits or Limits())
        self.faults = Faults()
        self.client = SandboxClient(self.world)
        #: Calls received, by Bot API method name.
        self.calls: Counter[str] = Counter()
        self._context = Context(self.world, self.limiter)
        self._pusher = WebhookPusher(self.world)
        self._runner: web.AppRunner | None = None

    # -- addresses ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server's root, e.g. http://127.0.0.1:PORT."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """python-telegram-bot's `base_url` (the token is appended to it)."""
        return f"{self.url}/bot"

    @property
    def file_url(self) -> str:
        """python-telegram-bot's `base_file_url` (the token is appended to it)."""
        return f"{self.url}/file/bot"

    # -- life cycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Listen on host:port (a free port if 0) and start the webhook pusher."""
        if self._runner is not None:
            raise RuntimeError("the server is already running")
        app = web.Application(client_max_size=MAX_REQUEST_SIZE)
        app.router.add_route("*", "/bot{token}/{method}", self._call)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        app.add_routes(ControlApi(self.client).routes())
        runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]
        self._pusher.start()

    async def stop(self) -> None:
        """End long polls, stop the webhook pusher and close the listener."""
        self.world.close()
        await self._pusher.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> BotApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- test controls ---------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        status: int = 500,
        count: int = 1,
        *,
        description: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Make the next `count` calls of `method` fail with `status` (see Faults)."""
        self.faults.fail_next(
            method, status, count, description=description, retry_after=retry_after
        )

    def delay(self, method: str, seconds: float) -> None:
        """Make each call of `method` wait `seconds` before acting (0 removes it)."""
        self.faults.delay(method, seconds)

    def set_limits(self, limits: Limits) -> None:
        """Change the flood limits of the running server."""
        self.limiter.reconfigure(limits)

    @property
    def too_many_requests(self) -> int:
        """How many 429 answers the flood limits gave."""
        return self.limiter.rejected

    def send_times(self, chat_id: int) -> list[float]:
        """time.monotonic() of each accepted send to `chat_id`."""
        return list(self.limiter.send_times.get(chat_id, []))

    # -- HTTP ----------------------------------------------------------------------------

    async def _call(self, request: web.Request) -> web.Response:
        try:
            if request.match_info["token"] != self.token:
                raise status_error(401)
            found = find_method(request.match_info["method"])
            if found is None:
                raise status_error(404)
            name, handler = found
            self.calls[name] += 1
            params = await read_params(request)
            pause = self.faults.delay_for(name)
            if pause > 0:
                await asyncio.sleep(pause)
            failure = self.faults.take_failure(name)
            if failure is not None:
                raise failure
            with self.world.lock:
                result = handler(self._context, params)
            if inspect.isawaitable(result):
                result = await result
        except ApiError as error:
            return web.json_response(error.to_api(), status=error.status, dumps=_dumps)
        return web.json_response({"ok": True, "result": result}, dumps=_dumps)

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            error = status_error(401)
            return web.json_response(error.to_api(), status=error.status)
        stored = self.world.files_by_path.get(request.match_info["path"])
        if stored is None:
            error = status_error(404)
            return web.json_response(error.to_api(), status=error.status)
        return web.Response(
            body=stored.data, content_type=stored.mime_type or "application/octet-stream"
        )


@contextmanager
def running_server(**options: Any) -> Iterator[BotApiServer]:
    """A started `BotApiServer` on its own event loop in a background thread.

    For synchronous callers (tests, the sandbox CLI): `options` go to
    BotApiServer; the server stops and the thread ends when the block exits.
    """
    server = BotApiServer(**options)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="sandbox-botapi", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(THREAD_TIMEOUT)
        yield server
    finally:
        try:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(THREAD_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(THREAD_TIMEOUT)
            loop.close()
