"""Benchmark delivery: a fan-out of alerts through the real Redis broker, `closeout
worker` processes and the local Bot API server enforcing Telegram-shaped limits.

Builds a fresh database (PostgreSQL by default) with CHATS members, one item
each and ALERTS outbox rows spread over them (reminder, overdue and escalation
stages of each member's item), starts `closeout worker -p PROCESSES` against a
Redis namespace of its own, enqueues every row, and waits until none is
pending. The Bot API server enforces the limits scaled up (overall RATE/s, one
a second per chat) and answers 429 past them; the workers' shared limiter is
told the same rates. The pump runs beside them as the scheduler would.

    /work/venv/bin/python bench/fanout.py [--alerts 20000 --chats 5000 --rate 300
        --processes 2 --threads 8 --bundle-max 10 --backend postgres]

A message is one sendMessage the server accepted; the ceiling counts those.
With bundling (the product's default) a member's four alerts go as one
message, so 20,000 alerts to 5,000 chats are 5,000 messages; `--bundle-max 1`
sends every alert as its own message. Two processes of eight threads by
default: the development machine has two cores, and more threads only queue
for them. Exit 1 when an aim is missed.

Reported: messages/s between the first and the last send (and end to end, from
the first enqueue), against the ceiling (the overall rate, or what the per-chat
limit allows, whichever is lower); 429 answers; lost alerts (a row not sent, or
sent in a message the chat does not have); duplicated messages (more messages in
a chat than distinct messages its rows were sent in); the gaps between sends;
the machine's load average (other work on it slows the workers).
"""

from __future__ import annotations

import argparse
import gc
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import redis
from sqlalchemy import text
from sqlmodel import Session, col, func, select, update

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models import clock  # noqa: E402
from models.db import make_engine, transaction, upgrade  # noqa: E402
from models.outbox import Owed, notify_many  # noqa: E402
from models.tables import Item, Member, Notification, Org  # noqa: E402
from sandbox.botapi import Limits, running_server  # noqa: E402
from settings import load_settings  # noqa: E402

#: Alerts, chats and the overall rate of the default run.
DEFAULT_ALERTS, DEFAULT_CHATS, DEFAULT_RATE = 20_000, 5_000, 300
#: Stages of each member's item, in the order they are owed.
STAGES = ("remind-3", "remind-1", "overdue", "escalate-1", "escalate-2", "assigned")
#: Telegram user (and chat) ids of the members, from this one on.
FIRST_CHAT = 1_000_000
#: The machine's PostgreSQL and Redis.
POSTGRES_ADMIN_URL = os.environ.get(
    "CLOSEOUT_TEST_POSTGRES", "postgresql+psycopg://root@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("CLOSEOUT_TEST_REDIS", "redis://127.0.0.1:6379/0")
#: The aim: at least this share of the ceiling, between the first send and the last.
MIN_SHARE = 0.95
#: How often the benchmark looks at the outbox, and runs the pump.
POLL = 0.5  # seconds
PUMP_EVERY = 5.0  # seconds
#: Give up when nothing was sent for this long.
STALL = 120.0  # seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=DEFAULT_ALERTS)
    parser.add_argument("--chats", type=int, default=DEFAULT_CHATS)
    parser.add_argument("--rate", type=int, default=DEFAULT_RATE, help="messages/s overall")
    parser.add_argument("--chat-rate", type=float, default=1.0, help="messages/s in one chat")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--bundle-max", type=int, default=10, help="1: no bundling")
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument(
        "--kind",
        choices=("item", "text"),
        default="item",
        help="item: reminder/escalation stages rendered as item cards; text: pre-rendered text",
    )
    parser.add_argument("--enqueue", metavar="NAMESPACE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.enqueue:
        return enqueue_all(args.enqueue)
    if args.alerts > args.chats * len(STAGES):
        parser.error(f"at most {len(STAGES)} alerts per chat")

    namespace = f"closeout-bench-{uuid.uuid4().hex[:10]}"
    with (
        database(args.backend) as url,
        running_server(
            limits=Limits(global_per_second=args.rate, per_chat_per_second=args.chat_rate)
        ) as server,
    ):
        engine = make_engine(url)
        print(f"building {args.chats} members, items and {args.alerts} alerts …", flush=True)
        ids = build(engine, server, args.alerts, args.chats, args.kind)
        settings = load_settings(
            DATABASE_URL=url,
            REDIS_URL=REDIS_URL,
            BOT_TOKEN=server.token,
            TELEGRAM_API_URL=server.base_url,
            QUIET_HOURS="",
        )
        command = [
            sys.executable, "-m", "cli", "worker",
            "-p", str(args.processes), "-t", str(args.threads),
            "--redis-namespace", namespace,
            "--global-per-second", str(args.rate),
            "--chat-per-second", str(args.chat_rate),
            "--bundle-max", str(args.bundle_max),
        ]  # fmt: skip
        env = dict(os.environ)
        env.update(
            DATABASE_URL=url,
            REDIS_URL=REDIS_URL,
            BOT_TOKEN=server.token,
            TELEGRAM_API_URL=server.base_url,
            QUIET_HOURS="",
        )
        log = Path(tempfile.mkstemp(prefix="fanout-workers-", suffix=".log")[1])
        workers = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_ready(log, args.processes)
            from tasks import load_actors

            rt = load_actors(settings, engine=engine, namespace=namespace)
            from tasks.delivery import pump_once

            producer = Producer(env, namespace)
            load_before = os.getloadavg()[0]
            # The Bot API server keeps every message in this process: a full pass
            # of the collector over them stopped it for ~100 ms now and then, and
            # the requests that queued meanwhile were then counted together (429s
            # that Telegram, timing sends as they arrive, would not answer).
            gc.disable()
            cpu_before, machine_before = group_cpu(workers.pid), machine_cpu()
            services_before = services_cpu()
            own_before = time.process_time()
            started = time.monotonic()
            producer.go()
            pumped = run_until_sent(engine, server, rt, pump_once)
            finished = time.monotonic()
            cpu = Cpu(
                workers=group_cpu(workers.pid) - cpu_before,
                server=time.process_time() - own_before,
                services=services_cpu() - services_before,
                machine=machine_cpu() - machine_before,
            )
            gc.enable()
            enqueued = producer.seconds()
            load_after = os.getloadavg()[0]
        finally:
            os.kill(workers.pid, signal.SIGTERM)  # Dramatiq passes it on to its processes
            try:
                workers.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(workers.pid, signal.SIGKILL)
            drop_namespace(namespace)
        ok = report(
            args,
            engine,
            server,
            ids,
            started,
            finished,
            enqueued,
            pumped,
            command,
            log,
            (load_before, load_after),
            cpu,
        )
        engine.dispose()
    return 0 if ok else 1


class database:
    """A fresh, migrated database for the run, dropped afterwards."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.name = f"closeout_bench_{uuid.uuid4().hex[:10]}"
        self.folder: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> str:
        if self.backend == "sqlite":
            self.folder = tempfile.TemporaryDirectory()
            url = f"sqlite:///{self.folder.name}/bench.db"
        else:
            admin = make_engine(POSTGRES_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{self.name}"'))
            admin.dispose()
            url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{self.name}"
        upgrade(url)
        return url

    def __exit__(self, *exc: object) -> None:
        if self.folder is not None:
            self.folder.cleanup()
            return
        admin = make_engine(POSTGRES_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        admin.dispose()


def build(engine, server, alerts: int, chats: int, kind: str = "item") -> list[int]:  # type: ignore[no-untyped-def]
    """Members bound to simulated users, an item each, and the alerts owed:
    stages of the member's item (a card rendered for each), or text alerts."""
    now = clock.now()
    with transaction(engine) as session:
        org = Org(code="BENCH", name="压测党委", kind="committee", path="/")
        session.add(org)
        session.flush()
        org.path = f"/{org.id}/"
        members = [
            Member(
                code=f"B{n:05d}",
                name=f"成员{n}",
                org_id=org.id,  # type: ignore[arg-type]
                roles="secretary;member",
                telegram_user_id=FIRST_CHAT + n,
                chat_id=FIRST_CHAT + n,
                language="zh",
            )
            for n in range(chats)
        ]
        session.add_all(members)
        session.flush()
        items = [
            Item(
                kind="problem",
                org_id=org.id,  # type: ignore[arg-type]
                responsible_id=member.id,
                title=f"压测问题 {n}：整改台账未及时更新",
                created_at=now,
                due_date=date(2026, 3, 20),
            )
            for n, member in enumerate(members)
        ]
        session.add_all(items)
        session.flush()
        owed = [
            Owed(
                stage=STAGES[k],
                item_number=items[n].number,
                due_date=items[n].due_date,
                recipient_id=members[n].id,
            )
            if kind == "item"
            else Owed(
                stage="spotcheck",
                recipient_id=members[n].id,
                occurrence=k,
                data={"text": f"【随机抽查】第 {k} 批：请于本月内完成对第 {n} 号单位的抽查。"},
            )
            for k in range(len(STAGES))
            for n in range(chats)
        ][:alerts]
        notify_many(session, owed)
    for n in range(chats):
        server.client.user(FIRST_CHAT + n, f"成员{n}")
    with Session(engine) as session:
        return list(session.exec(select(Notification.id).order_by(col(Notification.id))).all())


class Producer:
    """The process that enqueues the jobs, as the sweep's worker would after its
    commit: `enqueue_changes`, a `deliver` job per DELIVER_BATCH rows in id
    order. A process of its own, because in
    this one the Bot API server's thread would hold the GIL between each of its
    Redis calls (a few ms each: a 20,000-job enqueue would pace the run)."""

    def __init__(self, env: dict[str, str], namespace: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--enqueue", namespace],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        if self.process.stdout.readline().strip() != READY:
            raise SystemExit("the producer did not start")

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.close()

    def seconds(self) -> float:
        """How long enqueueing took (waits for the producer to finish)."""
        assert self.process.stdout is not None
        out = self.process.stdout.read()
        if self.process.wait() != 0:
            raise SystemExit("the producer failed")
        return float(out.split()[-1])


#: The producer's line when it is ready to enqueue.
READY = "ready"


def enqueue_all(namespace: str) -> int:
    """The producer's side: wait for "go", enqueue every pending row, print the seconds."""
    from tasks import load_actors

    settings = load_settings()
    engine = make_engine(settings.DATABASE_URL)
    load_actors(settings, engine=engine, namespace=namespace)
    from models.delivery import Changes
    from tasks.delivery import enqueue_changes

    with Session(engine) as session:
        ids = list(
            session.exec(
                select(Notification.id)
                .where(Notification.status == "pending")
                .order_by(col(Notification.id))
            ).all()
        )
    print(READY, flush=True)
    sys.stdin.readline()
    started = time.monotonic()
    with transaction(engine) as session:
        session.execute(update(Notification).values(enqueued_at=clock.now()))
    enqueue_changes(Changes(notifications=tuple(i for i in ids if i is not None)))
    print(f"{time.monotonic() - started:.3f}", flush=True)
    return 0


def wait_ready(log: Path, processes: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while log.read_text(errors="replace").count("Worker process is ready") < processes:
        if time.monotonic() > deadline:
            raise SystemExit(f"workers did not start; see {log}")
        time.sleep(0.2)


def run_until_sent(engine, server, rt, pump_once) -> int:  # type: ignore[no-untyped-def]
    """Poll until no row is pending, pumping as the scheduler does; rows pumped."""
    pumped = 0
    last_pump = time.monotonic()
    last_progress, last_sent = time.monotonic(), -1
    while True:
        with Session(engine) as session:
            pending = session.exec(
                select(func.count()).where(Notification.status == "pending")
            ).one()
        sent = server.limiter.total_sends()
        print(f"\r  sent {sent} messages, {pending} alerts pending   ", end="", flush=True)
        if not pending:
            print()
            return pumped
        if sent != last_sent:
            last_progress, last_sent = time.monotonic(), sent
        elif time.monotonic() - last_progress > STALL:
            raise SystemExit(f"\nstalled: {pending} alerts pending")
        if time.monotonic() - last_pump >= PUMP_EVERY:
            pumped += pump_once(rt)
            last_pump = time.monotonic()
        time.sleep(POLL)


@dataclass(frozen=True)
class Cpu:
    """CPU seconds (user + system) spent during the run."""

    workers: float
    #: This process: the Bot API server's thread, and the polling and pumping.
    server: float
    #: PostgreSQL's and Redis's processes.
    services: float
    #: Every process on the machine (PostgreSQL and Redis too, and other work).
    machine: float


def machine_cpu() -> float:
    """Busy CPU seconds of the whole machine so far (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


def group_cpu(group: int) -> float:
    """User + system CPU seconds of the processes in process group `group` (the
    workers: `closeout worker` and the processes it forks)."""
    return _processes_cpu(lambda name, pgrp: pgrp == group)


def services_cpu() -> float:
    """User + system CPU seconds of the machine's PostgreSQL and Redis processes."""
    return _processes_cpu(lambda name, pgrp: name in ("postgres", "redis-server"))


def _processes_cpu(wanted: Callable[[str, int], bool]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, rest = (entry / "stat").read_text().split(" (", 1)[1].rsplit(")", 1)
        except (OSError, ValueError):
            continue  # ended meanwhile
        fields = rest.split()
        # After the command's name: state, ppid, pgrp, … utime (12th), stime (13th).
        if wanted(name, int(fields[2])):
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def drop_namespace(namespace: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{namespace}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    client.close()


def report(  # type: ignore[no-untyped-def]
    args, engine, server, ids, started, finished, enqueued, pumped, command, log, load, cpu
) -> bool:
    """Print the figures; False when an aim is missed (rate, 429s, lost, duplicated)."""
    with Session(engine) as session:
        rows = list(session.exec(select(Notification)).all())
        chat_of = dict(session.exec(select(Member.id, Member.chat_id)).all())  # type: ignore[arg-type]
    delivered = {
        FIRST_CHAT + n: {m.message_id for m in server.client.messages(FIRST_CHAT + n)}
        for n in range(args.chats)
    }
    # Lost: a row not sent, or sent in a message its chat does not have.
    wanted: dict[int, set[int]] = {}
    lost = 0
    for row in rows:
        chat = chat_of[row.recipient_id]
        if row.status != "sent" or row.message_id not in delivered[chat]:
            lost += 1
        else:
            wanted.setdefault(chat, set()).add(row.message_id)
    messages = sum(len(found) for found in delivered.values())
    # Duplicated: messages in a chat beyond the distinct messages its rows went in.
    duplicated = sum(len(found - wanted.get(chat, set())) for chat, found in delivered.items())
    times = sorted(t for n in range(args.chats) for t in server.send_times(FIRST_CHAT + n))
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    rate = (len(times) - 1) / span if len(times) > 1 else float("nan")
    # The ceiling: the overall rate, unless one chat's messages need longer at
    # one a second than the rest need at the overall rate.
    most = max((len(found) for found in delivered.values()), default=0)
    ceiling = float(args.rate)
    if most > 1 and messages / ((most - 1) / args.chat_rate) < ceiling:
        ceiling = messages / ((most - 1) / args.chat_rate)
    total = finished - started
    print()
    print(f"benchmark:    {shlex.join([sys.executable, *sys.argv])}")
    print(f"workers:      {shlex.join(command)}")
    print(f"workers' log: {log}")
    print(
        f"setup:        {len(rows)} {args.kind} alerts to {len(delivered)} chats, {args.backend}, "
        f"Redis; "
        f"bundle-max {args.bundle_max}; {args.processes} processes x {args.threads} threads; "
        f"limits {args.rate}/s overall, {args.chat_rate}/s per chat (server and workers)"
    )
    print(
        f"machine:      {os.cpu_count()} cores, load average {load[0]:.1f} at the start, "
        f"{load[1]:.1f} at the end (1 min, every process on the machine)"
    )
    print(f"messages:     {messages} sent")
    print(
        f"throughput:   {rate:.1f} messages/s from the first send to the last ({span:.1f} s), "
        f"ceiling {ceiling:.0f}/s: {100 * rate / ceiling:.1f}%"
    )
    print(
        f"end to end:   {total:.1f} s from the first enqueue to the last row sent "
        f"({messages / total:.1f} messages/s, {len(rows) / total:.0f} alerts/s; "
        f"enqueueing {len(ids)} rows took {enqueued:.1f} s)"
    )
    gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False))
    if gaps:
        pick = [
            gaps[min(len(gaps) - 1, int(share * len(gaps)))] * 1000 for share in (0.5, 0.9, 0.99)
        ]
        print(
            f"gaps:         between sends, median {pick[0]:.1f} ms, 90% {pick[1]:.1f} ms, "
            f"99% {pick[2]:.1f} ms, longest {gaps[-1] * 1000:.0f} ms "
            f"(the ceiling's: {1000 / ceiling:.1f} ms)"
        )
    per = 1000 / max(messages, 1)
    print(
        f"CPU:          workers {cpu.workers:.1f} s ({cpu.workers * per:.2f} ms per message, "
        f"{1000 * cpu.workers / max(len(rows), 1):.2f} ms per alert); Bot API server "
        f"{cpu.server:.1f} s ({cpu.server * per:.2f} ms per message); PostgreSQL and Redis "
        f"{cpu.services:.1f} s ({cpu.services * per:.2f} ms per message); whole machine "
        f"{cpu.machine:.1f} s of {(os.cpu_count() or 1) * total:.1f} s "
        f"({cpu.machine * per:.2f} ms per message)"
    )
    print(f"429 answers:  {server.too_many_requests}")
    print(f"lost:         {lost}")
    print(f"duplicated:   {duplicated}")
    print(f"pumped again: {pumped} rows")
    missed = [
        what
        for what, bad in (
            (f"under {100 * MIN_SHARE:.0f}% of the ceiling", not rate >= MIN_SHARE * ceiling),
            ("429 answers", server.too_many_requests > 0),
            ("lost alerts", lost > 0),
            ("duplicated messages", duplicated > 0),
        )
        if bad
    ]
    print(f"verdict:      {'MISSED: ' + ', '.join(missed) if missed else 'every aim met'}")
    return not missed


if __name__ == "__main__":
    raise SystemExit(main())
