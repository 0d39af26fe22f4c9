"""`closeout worker` processes against Redis and the database (SPEC §5, §6): a
worker killed with SIGKILL mid-delivery loses nothing, and workers in separate
processes share one flood limiter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from models import clock
from models.db import transaction
from models.delivery import Changes
from models.ladder import OVERDUE
from models.outbox import notify
from models.tables import Notification
from sandbox.botapi import BotApiServer, Limits
from tasks import Runtime, load_actors
from tasks.delivery import FRESH_GRACE, enqueue_changes, pump_once
from tests.support import District
from tests.tasks.support import (
    ROOT,
    make_settings,
    new_item,
    owe,
    rows,
    wait_until,
    worker_process,
)

#: The fixture district's time zone (`make_settings`).
ZONE = ZoneInfo("Asia/Shanghai")
#: Private chats the alerts go to, from this id on.
FIRST_CHAT = 70_000


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Worker processes a test starts; any still running are stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)  # Dramatiq passes it on
    for process in started:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _owe_alerts(engine: Engine, server: BotApiServer, chats: int, per_chat: int) -> list[int]:
    # Alerts to private chats, as bulletins and spot checks are owed: text rows.
    for n in range(chats):
        server.client.user(FIRST_CHAT + n, f"用户{n}")
    with transaction(engine) as session:
        for n in range(chats):
            for k in range(per_chat):
                notify(
                    session,
                    stage="spotcheck",
                    chat_id=FIRST_CHAT + n,
                    occurrence=k,
                    data={"text": f"第 {n} 号用户的第 {k} 条提醒"},
                )
    return [r.id for r in rows(engine) if r.id is not None]


def _enqueue(rt: Runtime, ids: list[int]) -> None:
    # As a writer's commit hands them over: a delivery job per DELIVER_BATCH rows.
    now = clock.now()
    with transaction(rt.engine) as session:
        for row in session.exec(select(Notification).where(col(Notification.id).in_(ids))):
            row.enqueued_at = now
            session.add(row)
    enqueue_changes(Changes(notifications=tuple(ids)))


def _sent_to(server: BotApiServer, chats: int) -> Counter[int]:
    return Counter(
        {FIRST_CHAT + n: len(server.client.messages(FIRST_CHAT + n)) for n in range(chats)}
    )


def test_a_worker_killed_mid_delivery_loses_nothing_and_repeats_at_most_its_claims(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    redis_url: str,
    namespace: str,
    workers: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    chats = 200
    botapi.delay("sendMessage", 0.1)  # calls in flight when the blow falls
    settings = make_settings(database_url, botapi, redis_url)
    rt = load_actors(settings, engine=engine, namespace=namespace)  # to enqueue and pump
    ids = _owe_alerts(engine, botapi, chats, per_chat=1)
    _enqueue(rt, ids)

    workers.append(worker_process(settings, namespace, "-t", "8", log=tmp_path / "first.log"))
    wait_until(
        lambda: sum(_sent_to(botapi, chats).values()) >= 40,
        timeout=60,
        what="the first worker to be delivering",
    )
    os.killpg(workers[0].pid, signal.SIGKILL)
    workers[0].wait()
    with Session(engine) as session:
        now = clock.now()
        claimed = {
            row.chat_id
            for row in session.exec(select(Notification).where(Notification.status == "pending"))
            if row.not_before is not None and row.not_before > now
        }
    sent_before = sum(_sent_to(botapi, chats).values())
    assert sent_before < chats, "the worker finished before it was killed"

    workers.append(worker_process(settings, namespace, "-t", "8", log=tmp_path / "second.log"))
    deadline = time.monotonic() + 120
    while any(r.status == "pending" for r in rows(engine, ids)):
        assert time.monotonic() < deadline, "rows still pending two minutes after the kill"
        # The killed worker's prefetched jobs are in its Redis ack list: the pump
        # (the scheduler's, every few seconds) enqueues their rows again.
        pump_once(rt, grace=timedelta(seconds=3), fresh_grace=timedelta(0))
        time.sleep(1)

    assert {r.status for r in rows(engine, ids)} == {"sent"}
    counts = _sent_to(botapi, chats)
    assert all(counts[FIRST_CHAT + n] >= 1 for n in range(chats)), "a message was lost"
    twice = {chat for chat, count in counts.items() if count > 1}
    # Only a message in flight at the kill (claimed, not yet marked) may come twice.
    assert twice <= claimed, (twice, claimed)
    assert len(twice) <= 8  # one per worker thread at most
    assert all(count <= 2 for count in counts.values())


def test_two_worker_processes_share_the_limits_never_exceeding_a_window(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    redis_url: str,
    namespace: str,
    workers: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    overall = 20
    botapi.set_limits(Limits(global_per_second=overall, per_chat_per_second=1))
    settings = make_settings(database_url, botapi, redis_url)
    rt = load_actors(settings, engine=engine, namespace=namespace)
    chats, per_chat = 8, 5
    ids = _owe_alerts(engine, botapi, chats, per_chat)
    options = ("-t", "4", "--global-per-second", str(overall), "--bundle-max", "1")
    for name in ("host-a", "host-b"):
        workers.append(worker_process(settings, namespace, *options, log=tmp_path / f"{name}.log"))
    _enqueue(rt, ids)
    wait_until(
        lambda: all(r.status != "pending" for r in rows(engine, ids)),
        timeout=60,
        what="every alert to be sent",
    )

    assert {r.status for r in rows(engine, ids)} == {"sent"}
    assert botapi.too_many_requests == 0
    times = sorted(t for n in range(chats) for t in botapi.send_times(FIRST_CHAT + n))
    assert len(times) == chats * per_chat  # one message each: none lost, none twice
    for n in range(chats):
        assert botapi.limiter.max_rate(FIRST_CHAT + n, 1.0) == 1
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= overall
    # Both processes took part.
    logs = [(tmp_path / f"{name}.log").read_text() for name in ("host-a", "host-b")]
    assert all("Worker process is ready" in log for log in logs)


@contextmanager
def closeout_run(
    database_url: str, botapi: BotApiServer, log: Path, *extra: str, redis_url: str = ""
) -> Iterator[None]:
    """`closeout run` as a subprocess on these settings; stopped with SIGTERM, which must exit 0."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", *extra],
        cwd=ROOT,
        env=_env(database_url, botapi, redis_url),
        stdout=open(log, "wb"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    assert code == 0, log.read_text()


def _env(database_url: str, botapi: BotApiServer, redis_url: str = "") -> dict[str, str]:
    settings = make_settings(database_url, botapi)
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        BOT_TOKEN=settings.BOT_TOKEN or "",
        TELEGRAM_API_URL=settings.TELEGRAM_API_URL,
        TELEGRAM_FILE_URL=settings.TELEGRAM_FILE_URL,
        QUIET_HOURS="",
    )
    return env


def test_closeout_run_serves_the_bot_delivers_at_once_and_pumps_what_others_wrote(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    district: District,
    people: dict[str, int],
    tmp_path: Path,
) -> None:
    with closeout_run(database_url, botapi, tmp_path / "run.log"):
        inspector, secretary = people["M003"], people["M005"]
        # A finding logged in chat owes the secretary a push, sent after the commit:
        reply = botapi.client.send_text(inspector, "/new B01 | 食堂账目不清 | 10")
        botapi.client.wait_for_blocking(inspector, after=reply, timeout=30)
        logged = time.monotonic()
        push = botapi.client.wait_for_blocking(secretary, "食堂账目不清", timeout=10)
        assert "新交办事项" in (push.plain_text or "")
        # … faster than the pump could have: it leaves a row to its writer for 5 s.
        assert time.monotonic() - logged < FRESH_GRACE.total_seconds()

        # A row written by another process:
        owe(
            engine,
            stage="spotcheck",
            recipient_id=district.members["M004"],
            data={"text": {"zh": "抽查", "en": "Spot check this month"}},
        )
        botapi.client.wait_for_blocking(people["M004"], "Spot check this month", timeout=30)


@pytest.mark.parametrize("with_redis", [False, True], ids=["embedded", "redis"])
def test_closeout_sweep_from_a_second_shell_reaches_the_chat_within_seconds(
    with_redis: bool,
    request: pytest.FixtureRequest,
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    district: District,
    people: dict[str, int],
    tmp_path: Path,
) -> None:
    redis_url, extra = "", ()
    if with_redis:
        redis_url = request.getfixturevalue("redis_url")
        extra = ("--redis-namespace", request.getfixturevalue("namespace"))
    # Overdue by the real calendar: `closeout sweep` runs on today's date.
    number = new_item(
        engine, district, "B01", "整改台账逾期未报", clock.today(ZONE) - timedelta(days=30), "M005"
    )
    with closeout_run(database_url, botapi, tmp_path / "run.log", *extra, redis_url=redis_url):
        swept = subprocess.run(
            [sys.executable, "-m", "cli", "sweep"],
            cwd=ROOT,
            env=_env(database_url, botapi, redis_url),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert swept.returncode == 0, swept.stderr
        # The running process's pump finds what the other process wrote.
        wait_until(
            lambda: _sent(engine, number, OVERDUE), timeout=30, what="the overdue alert sent"
        )
    alerts = [m.plain_text or "" for m in botapi.client.messages(people["M005"])]
    assert any("整改台账逾期未报" in text and "已逾期" in text for text in alerts)


def _sent(engine: Engine, number: int, stage: str) -> bool:
    owed = [r for r in rows(engine) if r.item_number == number and r.stage == stage]
    return bool(owed) and all(r.status == "sent" for r in owed)
