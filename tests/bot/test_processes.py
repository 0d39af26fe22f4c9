"""`closeout bot` as real processes against the local Bot API server (SPEC §7,
DESIGN "Conversations"): the webhook refuses an update without its secret, two
webhook processes behind a load balancer serve one person's flow between them,
and a bot killed with SIGKILL in the middle of /submit loses nothing.

Each test runs on SQLite, then PostgreSQL; the processes and the test share the
database, and the secretary's chat on the local server shows what the bot said.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from models import clock
from models.db import transaction
from models.ledger import NewItem, create_item, get_item
from models.people import actor_for
from models.tables import Draft, Evidence, Item, Notification
from sandbox.botapi import (
    BotApiServer,
    Limits,
    MessageRecord,
    SandboxClient,
    User,
    running_server,
    tiny_png,
)
from sandbox.botapi.webhook import SECRET_HEADER
from tests.bot.support import People

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
#: Days until a test item is due (so it is neither overdue nor due soon).
DUE_IN_DAYS = 30
#: The deployment's zone, as the processes are given it (TIMEZONE).
ZONE = ZoneInfo("Asia/Shanghai")
#: How long the Bot API holds a call while the process making it is killed.
HUNG_CALL = 5.0  # seconds
#: Evidence messages one person sends at once, spread over two processes.
BURST = 8
#: update_id of the updates a test posts by hand, far beyond the server's own.
FORGED_UPDATE_ID = 900_000


@pytest.fixture
def botapi() -> Iterator[BotApiServer]:
    """The local Bot API server on a thread of its own: these tests block while they wait."""
    with running_server(limits=Limits(enabled=False)) as server:
        yield server


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


@pytest.fixture
def bots() -> Iterator[list[BotProcess]]:
    """The bot processes a test starts; any still running are stopped at the end."""
    started: list[BotProcess] = []
    yield started
    for bot in started:
        if bot.process.poll() is None:
            os.killpg(bot.process.pid, signal.SIGTERM)
    for bot in started:
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


def logged_item(engine: Engine, people: People) -> int:
    """An open finding at B01 (secretary M005) logged today by inspector M003."""
    district = people.district
    with transaction(engine) as session:
        today = clock.today(ZONE)
        item = create_item(
            session,
            actor_for(session, district.members["M003"]),
            NewItem(
                kind="problem",
                org_id=district.orgs["B01"],
                title="三会一课记录缺失",
                due_date=today + timedelta(days=DUE_IN_DAYS),
            ),
            today=today,
        )
        assert item.number is not None
        return item.number


def item_in(engine: Engine, number: int) -> Item:
    with Session(engine) as session:
        return get_item(session, number)


def evidence_of(engine: Engine, number: int) -> list[Evidence]:
    with Session(engine) as session:
        query = select(Evidence).where(Evidence.item_number == number).order_by(col(Evidence.id))
        return list(session.exec(query).all())


def wait_for(condition: Callable[[], bool], what: str, bot: BotProcess) -> None:
    """Poll `condition` until it holds; fail naming `what` (and the bot's log) after a while."""
    deadline = time.monotonic() + REPLY_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{bot.output()}")
        time.sleep(PROBE_INTERVAL)


def told_of_submission(engine: Engine, number: int) -> set[int]:
    """The members the outbox owes a `submitted` push about the item."""
    with Session(engine) as session:
        query = select(Notification.recipient_id).where(
            Notification.item_number == number, Notification.stage == "submitted"
        )
        return {recipient for recipient in session.exec(query) if recipient is not None}


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


@pytest.fixture
def balancer() -> Iterator[Balancer]:
    """The balancer on a free loopback port; WEBHOOK_URL points at it."""
    target = Balancer()
    handler = type("Handler", (_BalancerHandler,), {"balancer": target})
    server = ThreadingHTTPServer((LOOPBACK, 0), handler)
    target.url = f"http://{LOOPBACK}:{server.server_address[1]}{HOOK_PATH}"
    thread = threading.Thread(target=server.serve_forever, name="balancer", daemon=True)
    thread.start()
    yield target
    server.shutdown()
    server.server_close()
    thread.join(STOP_TIMEOUT)


# -- the webhook's secret ----------------------------------------------------------------------


def test_the_webhook_refuses_an_update_without_the_right_secret_and_handles_it_with_it(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    tmp_path: Path,
) -> None:
    number = logged_item(engine, people)
    secretary = people["M005"]
    port = free_port()
    bot = start_bot(
        database_url,
        botapi,
        tmp_path / "bot.log",
        webhook_url=f"http://{LOOPBACK}:{port}{HOOK_PATH}",
        listen_port=port,
    )
    bots.append(bot)
    wait_listening(bot)
    # The local server posts what people send, with the secret the bot set.
    opened = say(client, secretary, f"/submit {number}", f"#{number}", bot)

    evidence = text_update(FORGED_UPDATE_ID, secretary, "已补齐2025年第四季度支委会记录")
    assert post_update(bot.hook_url(), evidence, secret=None) == 403
    assert post_update(bot.hook_url(), evidence, secret="not-" + SECRET) == 403
    assert post_update(bot.hook_url(), evidence, secret=SECRET) == 200

    # Counted once: the two refused posts never reached the open submission.
    answer(client, secretary, opened, "已收到 1 件", bot)
    card = say(client, secretary, "/done", "待验收", bot)
    assert "1 件" in card.text
    rows = evidence_of(engine, number)
    assert [(row.kind, row.text) for row in rows] == [("text", "已补齐2025年第四季度支委会记录")]
    assert item_in(engine, number).status == "submitted"


def test_the_webhook_listens_on_an_ipv6_address_written_in_brackets(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    tmp_path: Path,
) -> None:
    host = "::1"
    port = free_port(host)
    bot = start_bot(
        database_url,
        botapi,
        tmp_path / "bot.log",
        webhook_url=f"http://[{host}]:{port}{HOOK_PATH}",
        listen_port=port,
        listen_host=host,
    )
    bots.append(bot)
    wait_listening(bot)
    say(client, people["M005"], "/whoami", "角色", bot)


# -- two webhook processes ---------------------------------------------------------------------


def test_two_webhook_processes_behind_a_balancer_carry_one_submission_between_them(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    balancer: Balancer,
    tmp_path: Path,
) -> None:
    number = logged_item(engine, people)
    secretary = people["M005"]
    for name in ("a", "b"):
        bots.append(
            start_bot(
                database_url,
                botapi,
                tmp_path / f"{name}.log",
                webhook_url=balancer.url,
                listen_port=free_port(),
            )
        )
    balancer.backends = bots
    for bot in bots:
        wait_listening(bot)

    balancer.target = 0
    say(client, secretary, f"/submit {number}", f"#{number}", bots[0])
    balancer.target = 1
    photo = client.send_photo(secretary, tiny_png(8, 6))
    answer(client, secretary, photo, "已收到 1 件", bots[1])
    balancer.target = 0
    say(client, secretary, "整改说明：已补齐会议记录", "已收到 2 件", bots[0])
    balancer.target = 1
    card = say(client, secretary, "/done", "待验收", bots[1])

    assert [index for _, index in balancer.served] == [0, 1, 0, 1]
    assert f"#{number} 已提交" in card.text and "2 件" in card.text
    rows = evidence_of(engine, number)
    assert [row.kind for row in rows] == ["photo", "text"]
    assert rows[0].file_unique_id == photo.photo[-1].file_unique_id
    assert rows[1].text == "整改说明：已补齐会议记录"
    item = item_in(engine, number)
    assert item.status == "submitted"
    assert item.submitted_by_id == people.district.members["M005"]
    assert told_of_submission(engine, number) == {
        people.district.members["M003"],
        people.district.members["M004"],
    }


def test_a_guided_new_answered_by_turns_on_two_webhook_processes_ends_with_one_item(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    balancer: Balancer,
    tmp_path: Path,
) -> None:
    inspector = people["M003"]
    for name in ("a", "b"):
        bots.append(
            start_bot(
                database_url,
                botapi,
                tmp_path / f"{name}.log",
                webhook_url=balancer.url,
                listen_port=free_port(),
            )
        )
    balancer.backends = bots
    for bot in bots:
        wait_listening(bot)

    # Every update goes to the other process than the one before it; the
    # buttons pressed are answered by the process that did not send them.
    balancer.target = 0
    say(client, inspector, "/new", "1/7", bots[0])
    balancer.target = 1
    category = say(client, inspector, "B03", "2/7", bots[1])
    balancer.target = 0
    severity = tap(client, inspector, category, "跳过", "3/7", bots[0])
    balancer.target = 1
    tap(client, inspector, severity, "较重", "4/7", bots[1])
    balancer.target = 0
    evidence = say(client, inspector, "党费收缴不及时", "5/7", bots[0])
    balancer.target = 1
    tap(client, inspector, evidence, "完成", "6/7", bots[1])
    balancer.target = 0
    confirm = say(client, inspector, "10", "7/7", bots[0])
    balancer.target = 1
    card = tap(client, inspector, confirm, "确认", "#1", bots[1])

    assert [index for _, index in balancer.served] == [0, 1] * 4
    assert "已登记问题 #1" in card.text
    item = item_in(engine, 1)
    assert item.org_id == people.district.orgs["B03"]
    assert (item.title, item.severity) == ("党费收缴不及时", "serious")
    assert item.creator_id == people.district.members["M003"]
    with Session(engine) as session:  # what follows is the new item's attach window
        draft = session.get(Draft, people.district.members["M003"])
    assert draft is not None and (draft.flow, draft.item_number) == ("attach", 1)


def test_a_webhook_process_stopped_with_sigterm_exits_cleanly_and_the_other_serves_on(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    balancer: Balancer,
    tmp_path: Path,
) -> None:
    # A rolling restart: one process stops; the webhook Telegram knows must stay set.
    number = logged_item(engine, people)
    secretary = people["M005"]
    for name in ("a", "b"):
        bots.append(
            start_bot(
                database_url,
                botapi,
                tmp_path / f"{name}.log",
                webhook_url=balancer.url,
                listen_port=free_port(),
            )
        )
    balancer.backends = bots
    for bot in bots:
        wait_listening(bot)
    balancer.target = 0
    say(client, secretary, f"/submit {number}", f"#{number}", bots[0])

    os.killpg(bots[0].process.pid, signal.SIGTERM)
    assert bots[0].process.wait(timeout=STOP_TIMEOUT) == 0, bots[0].output()
    with botapi.world.lock:
        hook = botapi.world.webhook
    assert hook is not None and hook.url == balancer.url

    balancer.target = 1
    say(client, secretary, "/done", "还没有任何佐证材料", bots[1])
    assert [index for _, index in balancer.served] == [0, 1]


def test_a_burst_after_submit_spread_round_robin_over_two_processes_keeps_its_order(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    balancer: Balancer,
    tmp_path: Path,
) -> None:
    # Telegram sends one chat's next update once the webhook answered the last
    # one; the answer must wait for the handling, or the photo below reaches the
    # other process before the submission it belongs to is open.
    number = logged_item(engine, people)
    secretary = people["M005"]
    for name in ("a", "b"):
        bots.append(
            start_bot(
                database_url,
                botapi,
                tmp_path / f"{name}.log",
                webhook_url=balancer.url,
                listen_port=free_port(),
            )
        )
    balancer.backends = bots
    balancer.round_robin = True
    for bot in bots:
        wait_listening(bot)

    opened = client.send_text(secretary, f"/submit {number}")
    photo = client.send_photo(secretary, tiny_png(8, 6))
    client.send_text(secretary, "整改说明：已补齐会议记录")
    client.send_text(secretary, "/done")
    card = answer(client, secretary, opened, "待验收", bots[0])

    assert [index for _, index in balancer.served] == [0, 1, 0, 1]
    assert f"#{number} 已提交" in card.text and "2 件" in card.text
    rows = evidence_of(engine, number)
    assert [row.kind for row in rows] == ["photo", "text"]
    assert rows[0].file_unique_id == photo.photo[-1].file_unique_id


def test_evidence_posted_to_two_webhook_processes_at_once_is_all_kept(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    balancer: Balancer,
    tmp_path: Path,
) -> None:
    # A balancer spreading one person's burst over both processes: each piece is
    # appended under the draft's row lock, so neither process writes over the other's.
    number = logged_item(engine, people)
    secretary = people["M005"]
    for name in ("a", "b"):
        bots.append(
            start_bot(
                database_url,
                botapi,
                tmp_path / f"{name}.log",
                webhook_url=balancer.url,
                listen_port=free_port(),
            )
        )
    balancer.backends = bots
    for bot in bots:
        wait_listening(bot)
    opened = say(client, secretary, f"/submit {number}", f"#{number}", bots[0])

    texts = [f"第 {k} 份整改材料" for k in range(BURST)]
    burst = [text_update(FORGED_UPDATE_ID + k, secretary, text) for k, text in enumerate(texts)]
    with ThreadPoolExecutor(max_workers=BURST) as pool:
        statuses = list(
            pool.map(lambda k: post_update(bots[k % 2].hook_url(), burst[k], SECRET), range(BURST))
        )
    assert statuses == [200] * BURST

    acks = wait_for_count(client, secretary, opened, BURST, bots)
    # Each append saw every earlier one: the counts acknowledged are 1 … BURST, once each.
    assert sorted(int(re.findall(r"(\d+) 件", ack.text)[-1]) for ack in acks) == list(
        range(1, BURST + 1)
    )
    card = say(client, secretary, "/done", "待验收", bots[0])
    assert f"{BURST} 件" in card.text
    assert sorted(row.text or "" for row in evidence_of(engine, number)) == sorted(texts)
    assert item_in(engine, number).status == "submitted"


def test_a_webhook_process_killed_mid_update_leaves_it_to_telegrams_retry_on_the_other(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    balancer: Balancer,
    tmp_path: Path,
) -> None:
    # The webhook answers only once the update is handled, so an update whose
    # process dies on the way is never answered, and Telegram sends it again.
    number = logged_item(engine, people)
    secretary = people["M005"]
    archive = tmp_path / "evidence"
    for name in ("a", "b"):
        bots.append(
            start_bot(
                database_url,
                botapi,
                tmp_path / f"{name}.log",
                webhook_url=balancer.url,
                listen_port=free_port(),
                EVIDENCE_DIR=str(archive),
            )
        )
    balancer.backends = bots
    for bot in bots:
        wait_listening(bot)
    balancer.target = 0
    say(client, secretary, f"/submit {number}", f"#{number}", bots[0])
    photo = client.send_photo(secretary, tiny_png(8, 6))
    answer(client, secretary, photo, "已收到 1 件", bots[0])

    # /done fetches the photo for the archive before it submits: kill it there.
    botapi.delay("getFile", HUNG_CALL)
    fetches = botapi.calls["getFile"]
    done = client.send_text(secretary, "/done")
    wait_for(
        lambda: botapi.calls["getFile"] > fetches,
        "the first process to fetch the photo for the archive",
        bots[0],
    )
    os.killpg(bots[0].process.pid, signal.SIGKILL)
    bots[0].process.wait(timeout=STOP_TIMEOUT)
    assert item_in(engine, number).status == "open"
    botapi.delay("getFile", 0)
    balancer.target = 1  # the balancer drops the dead process
    card = answer(client, secretary, done, "待验收", bots[1])

    done_update = balancer.served[-1][0]
    assert [index for update, index in balancer.served if update == done_update][0] == 0
    assert f"#{number} 已提交" in card.text and "1 件" in card.text
    assert item_in(engine, number).status == "submitted"
    (row,) = evidence_of(engine, number)
    assert row.file_unique_id == photo.photo[-1].file_unique_id
    assert row.archived_path is not None and Path(row.archived_path).is_file()


# -- SIGKILL in the middle of /submit ------------------------------------------------------------


def test_a_bot_killed_with_sigkill_mid_submission_leaves_it_for_the_next_process_to_finish(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    bots: list[BotProcess],
    tmp_path: Path,
) -> None:
    number = logged_item(engine, people)
    secretary = people["M005"]
    first = start_bot(database_url, botapi, tmp_path / "first.log")
    bots.append(first)
    # The first answer also waits for the process to start polling.
    say(client, secretary, f"/submit {number}", f"#{number}", first, timeout=START_TIMEOUT)
    photo = client.send_photo(secretary, tiny_png(8, 6))
    answer(client, secretary, photo, "已收到 1 件", first)

    os.killpg(first.process.pid, signal.SIGKILL)
    assert first.process.wait(timeout=STOP_TIMEOUT) == -signal.SIGKILL
    assert item_in(engine, number).status == "open" and evidence_of(engine, number) == []

    second = start_bot(database_url, botapi, tmp_path / "second.log")
    bots.append(second)
    say(
        client,
        secretary,
        "整改说明：已补齐会议记录",
        "已收到 2 件",
        second,
        timeout=START_TIMEOUT,
    )
    card = say(client, secretary, "/done", "待验收", second)

    assert f"#{number} 已提交" in card.text and "2 件" in card.text
    rows = evidence_of(engine, number)
    assert [row.kind for row in rows] == ["photo", "text"]
    assert rows[0].file_unique_id == photo.photo[-1].file_unique_id
    assert rows[1].text == "整改说明：已补齐会议记录"
    item = item_in(engine, number)
    assert item.status == "submitted"
    assert item.submitted_by_id == people.district.members["M005"]
    # The inspectors who logged and oversee it are owed the news (the outbox rows).
    assert told_of_submission(engine, number) == {
        people.district.members["M003"],
        people.district.members["M004"],
    }
