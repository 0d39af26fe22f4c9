"""`closeout bot` as a subprocess, a load balancer in front of webhook processes,
and the waits the process tests use (tests/bot/test_processes.py).

Every wait is bounded and polls instead of sleeping a fixed time; a wait that
fails names what it waited for and quotes the bot's log.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

from sandbox.botapi import BotApiServer, MessageRecord, SandboxClient, User
from sandbox.botapi.webhook import SECRET_HEADER

#: The project's root, where `python -m cli` runs.
ROOT = Path(__file__).resolve().parents[2]
#: How long a `closeout bot` process may take to start (imports, getMe, the
#: command menus) on a machine busy with other work.
START_TIMEOUT = 60.0  # seconds
#: How long the bot may take to answer one message.
REPLY_TIMEOUT = 30.0  # seconds
#: How long a stopped (SIGTERM) process gets before it is killed.
STOP_TIMEOUT = 20.0  # seconds
#: Pause between two readiness probes.
PROBE_INTERVAL = 0.05  # seconds
#: How long one wait for a reply lasts before the bot process is looked at again.
PROBE_SLICE = 1.0  # seconds
#: Where the processes' webhooks listen.
LOOPBACK = "127.0.0.1"
#: The webhook's secret, as the processes are given it (WEBHOOK_SECRET).
SECRET = "closeout-Test_secret-42"
#: Where the webhook listens on its host: the path of WEBHOOK_URL.
HOOK_PATH = "/telegram/hook"
#: The deployment's zone, as the processes are given it (TIMEZONE).
ZONE = ZoneInfo("Asia/Shanghai")


@dataclass
class BotProcess:
    """One `closeout bot` process and where its output goes."""

    process: subprocess.Popen[bytes]
    log: Path
    listen_port: int | None = None
    #: The webhook's host as a socket takes it (no brackets).
    listen_host: str = LOOPBACK

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def hook_url(self) -> str:
        assert self.listen_port is not None, "a polling bot has no webhook"
        return f"http://{url_host(self.listen_host)}:{self.listen_port}{HOOK_PATH}"


def stop_all(bots: list[BotProcess]) -> None:
    """SIGTERM to every process still running, then SIGKILL to any that lingers."""
    for bot in bots:
        if bot.process.poll() is None:
            os.killpg(bot.process.pid, signal.SIGTERM)
    for bot in bots:
        try:
            bot.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(bot.process.pid, signal.SIGKILL)
            bot.process.wait()


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on `host` that nothing listens on right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def url_host(host: str) -> str:
    """The host as a URL (and WEBHOOK_LISTEN) writes it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def start_bot(
    database_url: str,
    botapi: BotApiServer,
    log: Path,
    *,
    webhook_url: str | None = None,
    listen_port: int | None = None,
    listen_host: str = LOOPBACK,
    **settings: str,
) -> BotProcess:
    """`closeout bot` in its own process group: polling, or a webhook when given its URL;
    `settings` are more of its environment."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("WEBHOOK_")}
    env.update(
        DATABASE_URL=database_url,
        BOT_TOKEN=botapi.token,
        TELEGRAM_API_URL=botapi.base_url,
        TELEGRAM_FILE_URL=botapi.file_url,
        REDIS_URL="",
        QUIET_HOURS="",
        TIMEZONE=ZONE.key,
        LANGUAGE="zh",
        **settings,
    )
    if webhook_url is not None:
        assert listen_port is not None
        env.update(
            WEBHOOK_URL=webhook_url,
            WEBHOOK_SECRET=SECRET,
            WEBHOOK_LISTEN=f"{url_host(listen_host)}:{listen_port}",
        )
    output = open(log, "ab")  # noqa: SIM115 - lives with the process
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "bot"],
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output.close()  # the child holds its own copy
    return BotProcess(process, log, listen_port, listen_host)


def wait_listening(bot: BotProcess) -> None:
    """Return once the webhook process accepts connections (it sets the webhook first)."""
    assert bot.listen_port is not None
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if bot.process.poll() is not None:
            raise AssertionError(
                f"closeout bot exited with {bot.process.returncode}:\n{bot.output()}"
            )
        try:
            socket.create_connection((bot.listen_host, bot.listen_port), timeout=1).close()
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(
                f"closeout bot did not listen on port {bot.listen_port} within "
                f"{START_TIMEOUT} s:\n{bot.output()}"
            )
        time.sleep(PROBE_INTERVAL)


def say(
    client: SandboxClient,
    user: User,
    text: str,
    expect: str,
    bot: BotProcess,
    timeout: float = REPLY_TIMEOUT,
) -> MessageRecord:
    """The user sends text; the bot's next message containing `expect`."""
    sent = client.send_text(user, text)
    return answer(client, user, sent, expect, bot, timeout)


def answer(
    client: SandboxClient,
    user: User,
    sent: MessageRecord,
    expect: str,
    bot: BotProcess,
    timeout: float = REPLY_TIMEOUT,
) -> MessageRecord:
    """The bot's first message after `sent` containing `expect`; fails early if the bot died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.wait_for_blocking(user.id, expect, after=sent, timeout=PROBE_SLICE)
        except TimeoutError as exc:
            if bot.process.poll() is not None:
                raise AssertionError(
                    f"closeout bot exited with {bot.process.returncode}:\n{bot.output()}"
                ) from None
            if time.monotonic() > deadline:
                raise AssertionError(f"{exc}\n-- the bot's log:\n{bot.output()}") from None


def tap(
    client: SandboxClient,
    user: User,
    message: MessageRecord,
    label: str,
    expect: str,
    bot: BotProcess,
) -> MessageRecord:
    """The user presses the button whose text starts with `label`; the bot's next message."""
    data = next(
        (
            d
            for text, d in zip(message.button_texts, message.buttons, strict=True)
            if text.startswith(label)
        ),
        None,
    )
    assert data is not None, f"no button {label!r} among {message.button_texts}"
    last = client.last(user.id)
    assert last is not None
    query = client.press(user, message, data)
    deadline = time.monotonic() + REPLY_TIMEOUT
    while not query.answered:  # Telegram wants every press answered, by whichever process
        assert time.monotonic() < deadline, f"the press of {label!r} was not answered"
        version = client.world.changes.version
        if not query.answered:
            client.world.changes.wait_blocking(version, PROBE_SLICE)
    return answer(client, user, last, expect, bot)


def wait_for_count(
    client: SandboxClient,
    user: User,
    after: MessageRecord,
    count: int,
    bots: list[BotProcess],
) -> list[MessageRecord]:
    """The bot's first `count` messages to `user` after `after`, once there are that many."""
    deadline = time.monotonic() + REPLY_TIMEOUT
    while True:
        version = client.world.changes.version
        sent = [m for m in client.messages(user.id) if m.message_id > after.message_id]
        if len(sent) >= count:
            return sent[:count]
        if time.monotonic() > deadline:
            logs = "\n".join(f"-- {bot.log.name}:\n{bot.output()}" for bot in bots)
            raise AssertionError(f"{len(sent)} of {count} answers came:\n{logs}")
        client.world.changes.wait_blocking(version, PROBE_SLICE)


def post_update(url: str, update: dict[str, object], secret: str | None) -> int:
    """POST an update to a webhook as Telegram would (or a forger); the HTTP status."""
    request = urllib.request.Request(
        url, data=json.dumps(update).encode(), headers={"Content-Type": "application/json"}
    )
    if secret is not None:
        request.add_header(SECRET_HEADER, secret)
    try:
        with urllib.request.urlopen(request, timeout=REPLY_TIMEOUT) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def text_update(update_id: int, user: User, text: str) -> dict[str, object]:
    """An update carrying a text message from `user` in their private chat, made by hand."""
    sender = {"id": user.id, "is_bot": False, "first_name": user.first_name}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
            "from": sender,
            "text": text,
        },
    }


def wait_for(condition: Callable[[], bool], what: str, bot: BotProcess) -> None:
    """Poll `condition` until it holds; fail naming `what` (and the bot's log) after a while."""
    deadline = time.monotonic() + REPLY_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{bot.output()}")
        time.sleep(PROBE_INTERVAL)


@dataclass
class Balancer:
    """A load balancer in front of webhook processes: it forwards each request,
    headers and all, to the backend `target` names, and remembers who served what."""

    url: str = ""
    backends: list[BotProcess] = field(default_factory=list)
    target: int = 0
    #: Whether each request goes to the next backend after the one before.
    round_robin: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: (update_id, backend index) of each request, as it arrives.
    served: list[tuple[int, int]] = field(default_factory=list)

    def forward(self, body: bytes, secret: str | None) -> int:
        with self._lock:
            index = self.target
            if self.round_robin:
                self.target = (index + 1) % len(self.backends)
            update = json.loads(body)
            self.served.append((update["update_id"], index))
        try:
            return post_update(self.backends[index].hook_url(), update, secret)
        except OSError:  # the backend is gone (refused, reset): Telegram sees a bad gateway
            return 502


class _BalancerHandler(BaseHTTPRequestHandler):
    balancer: Balancer

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = self.balancer.forward(body, self.headers.get(SECRET_HEADER))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
        pass  # the test's output is for failures


@contextmanager
def running_balancer() -> Iterator[Balancer]:
    """A balancer on a free loopback port, until the block ends."""
    target = Balancer()
    handler = type("Handler", (_BalancerHandler,), {"balancer": target})
    server = ThreadingHTTPServer((LOOPBACK, 0), handler)
    target.url = f"http://{LOOPBACK}:{server.server_address[1]}{HOOK_PATH}"
    thread = threading.Thread(target=server.serve_forever, name="balancer", daemon=True)
    thread.start()
    try:
        yield target
    finally:
        server.shutdown()
        server.server_close()
        thread.join(STOP_TIMEOUT)
