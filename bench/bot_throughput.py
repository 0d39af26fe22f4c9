"""Benchmark one bot process: updates per second and reply latency.

Builds a district-sized directory (bench/import_directory.py's generator:
2,500 orgs by default) and a ledger of `--items` items on a fresh database
(SQLite, then PostgreSQL), binds its secretaries, leaders and inspectors to
simulated Telegram users, starts the local Bot API server (sandbox/botapi) in
this process and ONE real `closeout bot` as a child process, polling it, with
REDIS_URL set (pushes that /new owes are enqueued on Redis, as the Procfile's
bot does; no worker runs, and the namespace is dropped at the end).

Then, per backend:

- `reads`: `--reads` updates (/my, /item N, /ledger) posted as fast as the
  server takes them, each from a different user; updates/s is the count over
  the time from the first post to the last reply;
- `mixed`: the same with `--new-share` of one-shot `/new ORG | TITLE | DUE`
  from inspectors (each creates an item, an event and its outbox rows);
- `paced`: `--paced` read updates at `--rate` a second; each reply's latency
  is the time from posting the update to the server recording the bot's
  reply (sendMessage), p50/p95/p99.

Every update must get exactly one reply that is not an error ("error id")
and says what the command says (the item's #N, the ledger header, …);
otherwise the script exits 1. Flood limits: Telegram's overall 30 messages/s
would cap replies at 30/s, so the server's overall limit is lifted; the
per-chat limit (1/s) stays on, and no user sends twice within
`REUSE_AFTER` seconds, so no chat reaches it (429 answers are counted and
must be 0).

    .venv/bin/python bench/bot_throughput.py [--backend sqlite --backend postgres
        --orgs 2500 --members 20000 --items 5000 --reads 2000 --mixed 2000
        --paced 1500 --rate 50 --profile DIR]

`--profile DIR` runs the bot under yappi (bench/profile_process.py; every
thread, CPU clock) and leaves one pstats file per backend in DIR.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import text
from sqlmodel import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.import_directory import generate, write_csvs  # noqa: E402
from models import clock  # noqa: E402
from models.db import make_engine, transaction, upgrade  # noqa: E402
from models.directory import apply_directory, read_directory  # noqa: E402
from models.ledger_import import DEFAULT_ZONE, apply_ledger, read_ledger  # noqa: E402
from models.roles import FINISHED  # noqa: E402
from models.tables import Item, Member  # noqa: E402
from models.texts import t  # noqa: E402
from sandbox.botapi import BotApiServer, Limits, running_server  # noqa: E402

#: The default district: orgs and members (fewer members than import_directory's
#: 55,000: only the bound ones talk, and the rest only fill the tables).
DEFAULT_ORGS, DEFAULT_MEMBERS = 2500, 20_000
#: Items on the ledger.
DEFAULT_ITEMS = 5000
#: Updates in the saturation runs, and in the paced run.
DEFAULT_READS, DEFAULT_MIXED, DEFAULT_PACED = 2000, 2000, 1500
#: Share of one-shot /new in the mixed run.
DEFAULT_NEW_SHARE = 0.1
#: The paced run's rate.
DEFAULT_RATE = 50.0  # updates/s
#: Share of each read command (the rest of the reads are /ledger).
MY_SHARE, ITEM_SHARE = 0.4, 0.4
#: Updates sent before the timed runs (caches, connections, the first queries).
WARMUP = 100
#: A user sends again only this long after their last update, so that replies to
#: one chat stay a second apart (the per-chat flood limit) even when the bot lags.
REUSE_AFTER = 30.0  # seconds
#: Telegram user (and private chat) ids: this base plus the member's id.
USER_ID_BASE = 1_000_000
#: Items' statuses on the generated ledger (the rest are open).
STATUS_SHARE = {"in_progress": 0.45, "submitted": 0.1, "closed": 0.15}
#: Unfinished items are due between these many days before and after today.
DUE_SPREAD = (-40, 60)  # days
#: Give up when no reply came for this long.
STALL = 60.0  # seconds
#: After the last expected reply, wait this long for any extra one.
SETTLE = 1.0  # seconds
#: How long the bot may take to start polling.
START_TIMEOUT = 60.0  # seconds
#: How often the benchmark looks at the server while waiting.
POLL = 0.02  # seconds
SEED = 20260302
POSTGRES_ADMIN_URL = os.environ.get(
    "CLOSEOUT_TEST_POSTGRES", "postgresql+psycopg://root@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("CLOSEOUT_TEST_REDIS", "redis://127.0.0.1:6379/0")

console = Console(highlight=False, width=160)


# --- the district and its people ---------------------------------------------------------


@dataclass
class Person:
    """A bound member as the benchmark uses them."""

    user_id: int
    lang: str
    roles: frozenset[str]
    #: Numbers of items of the member's own org (for /item N).
    items: list[int] = field(default_factory=list)
    #: Unfinished items the member is responsible for (what /my lists).
    open_items: int = 0
    #: Org codes an inspector may log findings in (their groups' scopes).
    scope_codes: list[str] = field(default_factory=list)


def write_ledger(district, items: int, path: Path, rnd: random.Random) -> None:  # type: ignore[no-untyped-def]
    """A ledger CSV with `items` problems and list entries over the district's units."""
    today = clock.today(DEFAULT_ZONE)
    units = [code for code, _, kind, _ in district.orgs if kind != "committee"]
    kinds = ("problem",) * 7 + ("commitment", "task", "responsibility")
    statuses = list(STATUS_SHARE) + ["open"]
    weights = list(STATUS_SHARE.values()) + [1 - sum(STATUS_SHARE.values())]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ("kind", "org_code", "title", "severity", "created_at", "due_date", "status")
            + ("external_ref",)
        )
        for n in range(items):
            created = today - timedelta(days=rnd.randint(45, 120))
            due = today + timedelta(days=rnd.randint(*DUE_SPREAD))
            writer.writerow(
                (
                    rnd.choice(kinds),
                    rnd.choice(units),
                    f"压测事项 {n}：整改台账未及时更新",
                    rnd.choice(("general", "general", "serious", "severe")),
                    created.isoformat(),
                    due.isoformat(),
                    rnd.choices(statuses, weights)[0],
                    f"BENCH-{n:06d}",
                )
            )


def build(engine, server: BotApiServer, args: argparse.Namespace, workdir: Path) -> list[Person]:  # type: ignore[no-untyped-def]
    """Import the district and the ledger; bind secretaries, leaders and inspectors."""
    rnd = random.Random(SEED)
    district = generate(args.orgs, args.members)
    write_csvs(district, workdir / "district")
    write_ledger(district, args.items, workdir / "ledger.csv", rnd)
    with transaction(engine) as session:
        apply_directory(session, read_directory(workdir / "district", session=session))
    with transaction(engine) as session:
        apply_ledger(session, read_ledger(workdir / "ledger.csv", session=session))

    people: list[Person] = []
    with transaction(engine) as session:
        items_of: dict[int, list[int]] = {}
        responsible: Counter[int] = Counter()
        for number, org_id, member_id, status in session.exec(
            select(Item.number, Item.org_id, Item.responsible_id, Item.status)
        ).all():
            items_of.setdefault(org_id, []).append(number)
            if status not in FINISHED:
                responsible[member_id] += 1
        scopes: dict[str, list[str]] = {}
        for _, _, members, scope in district.groups:
            for member in members.split(";"):
                scopes.setdefault(member, []).extend(scope.split(";"))
        bound = []
        for member in session.exec(select(Member)).all():
            roles = frozenset(member.roles.split(";"))
            if not roles & {"secretary", "leader", "inspector"}:
                continue
            if not roles & {"secretary", "leader"} and member.code not in scopes:
                continue  # staff outside every group: nothing to do in the bot
            assert member.id is not None
            uid = USER_ID_BASE + member.id
            bound.append({"id": member.id, "uid": uid})
            people.append(
                Person(
                    user_id=uid,
                    lang=member.language or "zh",
                    roles=roles,
                    items=sorted(items_of.get(member.org_id, [])) if "secretary" in roles else [],
                    scope_codes=scopes.get(member.code, []),
                    open_items=responsible[member.id],
                )
            )
            server.client.user(uid, member.name, language_code=member.language or "zh")
        session.connection().execute(
            text("UPDATE member SET telegram_user_id = :uid, chat_id = :uid WHERE id = :id"),
            bound,
        )
    return people


# --- what is sent, and what must come back --------------------------------------------------


@dataclass
class Planned:
    person: Person
    kind: str  # my | item | ledger | new
    text: str
    #: A substring the reply must contain.
    expect: str
    posted: float = 0.0
    replied: float | None = None
    reply_text: str = ""


class Planner:
    """Picks who sends what, so that no user sends twice within REUSE_AFTER seconds."""

    def __init__(self, people: list[Person], rnd: random.Random) -> None:
        self.rnd = rnd
        self.last: dict[int, float] = {}
        self.pools = {
            # People with something to do ask /my; the others would get "nothing".
            "my": deque(p for p in people if p.open_items),
            "item": deque(p for p in people if p.items),
            "ledger": deque(p for p in people if p.roles & {"leader", "inspector"}),
            "new": deque(p for p in people if p.scope_codes),
        }
        for pool in self.pools.values():
            rnd.shuffle(pool)  # type: ignore[arg-type]
        self.serial = 0
        #: The planned timeline: when the latest planned update goes out.
        self.clock = 0.0

    def next(self, kind: str, at: float) -> Planned:
        pool = self.pools[kind]
        for _ in range(len(pool)):
            person = pool[0]
            pool.rotate(-1)
            if at - self.last.get(person.user_id, -1e9) >= REUSE_AFTER:
                self.last[person.user_id] = at
                return self._command(person, kind)
        raise SystemExit(
            f"not enough {kind!r} users for this many updates a second; "
            "use a larger district or fewer updates"
        )

    def _command(self, person: Person, kind: str) -> Planned:
        lang = "en" if person.lang == "en" else "zh"
        if kind == "my":
            # One item: its card; more: the list with its header. Both show "#N".
            return Planned(person, kind, "/my", "#")
        if kind == "item":
            number = self.rnd.choice(person.items)
            return Planned(person, kind, f"/item {number}", f"#{number}")
        if kind == "ledger":
            header = t(lang, "ledger_header", scope="\0").split("\0")[0]
            return Planned(person, kind, "/ledger", header)
        self.serial += 1
        org = self.rnd.choice(person.scope_codes)
        title = f"压测新登记 {self.serial}：会议记录不全"
        created = t(lang, "created", kind="\0", number=0).split("\0")[0]
        return Planned(person, kind, f"/new {org} | {title} | 10", created)

    def plan(self, count: int, new_share: float, rate: float | None) -> list[Planned]:
        # On the planned timeline runs are REUSE_AFTER apart: a saturation run
        # takes each user once, and the next may take them again.
        base = self.clock + REUSE_AFTER
        planned = []
        for n in range(count):
            at = base + (n / rate if rate else 0.0)
            roll = self.rnd.random()
            if roll < new_share:
                kind = "new"
            else:
                roll = self.rnd.random()
                kind = (
                    "my"
                    if roll < MY_SHARE
                    else "item"
                    if roll < MY_SHARE + ITEM_SHARE
                    else "ledger"
                )
            planned.append(self.next(kind, at))
            self.clock = at
        return planned


# --- the bot process ------------------------------------------------------------------------


@contextmanager
def bot_process(
    url: str, server: BotApiServer, namespace: str, profile: Path | None
) -> Iterator[subprocess.Popen[bytes]]:
    """`closeout bot` polling `server`, until the block ends (SIGTERM, as a supervisor stops it)."""
    if profile is not None:
        command = [sys.executable, str(ROOT / "bench" / "profile_process.py"), str(profile), "bot"]
    else:
        command = [sys.executable, "-m", "cli", "bot"]
    command += ["--redis-namespace", namespace]
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        REDIS_URL=REDIS_URL,
        BOT_TOKEN=server.token,
        TELEGRAM_API_URL=server.base_url,
        TELEGRAM_FILE_URL=server.file_url,
        QUIET_HOURS="",
    )
    log = Path(tempfile.mkstemp(prefix="bot-throughput-", suffix=".log")[1])
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    process.log = log  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while server.calls["getUpdates"] < 1:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the bot did not start polling; see {log}")
            time.sleep(0.1)
        yield process
    finally:
        process.send_signal(signal.SIGINT if profile is not None else signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drop_namespace(namespace: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{namespace}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    client.close()


# --- runs --------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    planned: list[Planned]
    first_post: float
    last_reply: float
    bot_cpu: float
    extra_replies: int
    failures: list[str]

    @property
    def span(self) -> float:
        return self.last_reply - self.first_post

    @property
    def rate(self) -> float:
        return len(self.planned) / self.span

    def latencies(self) -> list[float]:
        return sorted((p.replied or 0) - p.posted for p in self.planned)


def run(
    name: str,
    server: BotApiServer,
    bot: subprocess.Popen[bytes],
    planned: list[Planned],
    rate: float | None,
) -> Result:
    """Post `planned` (at `rate` a second, or at once), wait for every reply, check them."""
    client = server.client
    chats = {p.person.user_id for p in planned}
    before = {chat: len(server.limiter.send_times.get(chat, [])) for chat in chats}
    seen = {chat: len(client.messages(chat)) for chat in chats}
    waiting: dict[int, deque[Planned]] = {}
    cpu_before = cpu_seconds(bot.pid)
    sends_before = server.limiter.total_sends()
    done = 0
    with Progress(
        f"[progress.description]{name}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(name, total=len(planned))
        started = time.monotonic()
        for n, item in enumerate(planned):
            if rate:
                pause = started + n / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            item.posted = time.monotonic()
            client.send_text(item.person.user_id, item.text)
            waiting.setdefault(item.person.user_id, deque()).append(item)
        last_progress, last_count = time.monotonic(), -1
        while True:
            done = server.limiter.total_sends() - sends_before
            bar.update(task, completed=min(done, len(planned)))
            if done >= len(planned):
                break
            if done != last_count:
                last_progress, last_count = time.monotonic(), done
            elif time.monotonic() - last_progress > STALL:
                break
            time.sleep(POLL)
    time.sleep(SETTLE)
    cpu = cpu_seconds(bot.pid) - cpu_before
    failures: list[str] = []
    extra = 0
    for chat in chats:
        times = server.limiter.send_times.get(chat, [])[before[chat] :]
        replies = client.messages(chat)[seen[chat] :]
        expected = waiting[chat]
        if len(replies) > len(expected):
            extra += len(replies) - len(expected)
        for item, moment, message in zip(expected, times, replies, strict=False):
            item.replied = moment
            item.reply_text = message.plain_text or message.plain_caption or ""
        for item in expected:
            if item.replied is None:
                failures.append(f"no reply to {item.text!r} from user {chat}")
            elif item.expect not in item.reply_text:
                failures.append(
                    f"{item.text!r} from user {chat}: reply {item.reply_text[:120]!r} "
                    f"lacks {item.expect!r}"
                )
    replied = [p.replied for p in planned if p.replied is not None]
    return Result(
        name=name,
        planned=planned,
        first_post=min(p.posted for p in planned),
        last_reply=max(replied) if replied else float("nan"),
        bot_cpu=cpu,
        extra_replies=extra,
        failures=failures,
    )


# --- databases -----------------------------------------------------------------------------------


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh, migrated database of its own, dropped afterwards."""
    if backend == "sqlite":
        url = f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        upgrade(url)
        yield url
        return
    name = f"closeout_bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(POSTGRES_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- the report -----------------------------------------------------------------------------------


def percentile(sorted_values: list[float], share: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(share * len(sorted_values)) - 1))
    return sorted_values[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend", action="append", choices=("sqlite", "postgres"), help="default: both"
    )
    parser.add_argument("--orgs", type=int, default=DEFAULT_ORGS)
    parser.add_argument("--members", type=int, default=DEFAULT_MEMBERS)
    parser.add_argument("--items", type=int, default=DEFAULT_ITEMS)
    parser.add_argument("--reads", type=int, default=DEFAULT_READS)
    parser.add_argument("--mixed", type=int, default=DEFAULT_MIXED)
    parser.add_argument("--new-share", type=float, default=DEFAULT_NEW_SHARE)
    parser.add_argument("--paced", type=int, default=DEFAULT_PACED)
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="paced run, updates/s")
    parser.add_argument("--profile", type=Path, help="write the bot's yappi stats here")
    args = parser.parse_args()
    backends = args.backend or ["sqlite", "postgres"]
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)

    results: list[tuple[str, Result]] = []
    logs: list[str] = []
    failed = False
    limits = Limits(global_per_second=1_000_000, per_chat_per_second=1)
    with tempfile.TemporaryDirectory(prefix="closeout-bench-") as folder:
        workdir = Path(folder)
        for backend in backends:
            namespace = f"closeout-bench-{uuid.uuid4().hex[:10]}"
            with database(backend, workdir) as url, running_server(limits=limits) as server:
                engine = make_engine(url)
                started = time.perf_counter()
                people = build(engine, server, args, workdir)
                engine.dispose()
                console.print(
                    f"{backend}: {args.orgs} orgs, {args.members} members, {args.items} items, "
                    f"{len(people)} bound users; built in {time.perf_counter() - started:.1f} s"
                )
                planner = Planner(people, random.Random(SEED))
                profile = args.profile / f"bot-{backend}.pstats" if args.profile else None
                try:
                    with bot_process(url, server, namespace, profile) as bot:
                        logs.append(str(bot.log))  # type: ignore[attr-defined]
                        # Each run waits for its last reply and then SETTLE seconds, so a
                        # user's replies in two runs are always more than a second apart.
                        run("warm-up", server, bot, planner.plan(WARMUP, 0.0, None), None)
                        for name, count, share, rate in (
                            ("reads", args.reads, 0.0, None),
                            ("mixed", args.mixed, args.new_share, None),
                            ("paced", args.paced, 0.0, args.rate),
                        ):
                            if count == 0:
                                continue
                            result = run(name, server, bot, planner.plan(count, share, rate), rate)
                            results.append((backend, result))
                            for line in result.failures[:10]:
                                console.print(f"  [red]{backend}/{name}: {line}")
                            failed |= bool(result.failures or result.extra_replies)
                finally:
                    drop_namespace(namespace)
                if server.too_many_requests:
                    console.print(f"[red]{backend}: {server.too_many_requests} answers were 429")
                    failed = True

    table = Table(title="one `closeout bot` process, polling the local Bot API server")
    for column in (
        "database", "run", "updates", "mix", "updates/s", "p50 ms", "p95 ms", "p99 ms",
        "max ms", "bot CPU ms/update", "failed",
    ):  # fmt: skip
        table.add_column(
            column, justify="right" if column not in ("database", "run", "mix") else "left"
        )
    for backend, result in results:
        kinds = Counter(p.kind for p in result.planned)
        mix = " ".join(
            f"{kind} {kinds[kind]}" for kind in ("my", "item", "ledger", "new") if kinds[kind]
        )
        lat = [1000 * value for value in result.latencies()]
        table.add_row(
            backend,
            result.name,
            str(len(result.planned)),
            mix,
            f"{result.rate:.0f}",
            f"{percentile(lat, 0.50):.0f}",
            f"{percentile(lat, 0.95):.0f}",
            f"{percentile(lat, 0.99):.0f}",
            f"{lat[-1]:.0f}" if lat else "-",
            f"{1000 * result.bot_cpu / len(result.planned):.1f}",
            str(len(result.failures) + result.extra_replies),
        )
    console.print(table)
    console.print(f"benchmark: {shlex.join([sys.executable, *sys.argv])}")
    console.print(f"bot logs:  {' '.join(logs)}")
    console.print(f"cores: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}")
    if args.profile:
        console.print(f"profiles:  {args.profile}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
