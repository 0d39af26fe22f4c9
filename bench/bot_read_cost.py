"""What one bot read costs the bot's database thread, counted in instructions.

bench/bot_throughput.py's figures swing by a third between runs on a shared
two-CPU machine. Instructions executed (valgrind's cachegrind, no cache
simulation) vary by well under 1%, so they compare two versions of the code.

Builds bench/bot_throughput.py's district and ledger on a fresh database, then
for each read (/my, /item N, /ledger) runs what the bot runs on its database
thread for that update: the guard's look-up and the command's read, in one
read-only transaction (bot/guard.py, bot/queries.py), for bound members in
turn. Each read is counted in a child process under valgrind, once with
`--reads` reads and once with none (start-up, imports and 50 warm-up reads are
in both), and the difference is divided by `--reads`. Not counted: the
database server's own work, python-telegram-bot and the Bot API call, and the
card write after a reply. `--time` runs the children without valgrind and
reports CPU milliseconds per read instead.

    .venv/bin/python bench/bot_read_cost.py [--backend postgres] [--reads 300] [--time]
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

KINDS = ("my", "item", "ledger")
#: Reads of each kind before the counted ones, in every child.
WARMUP = 50
DEFAULT_READS = 300
SEED = 20261206
_INSTRUCTIONS = re.compile(r"I\s+refs:\s+([\d,]+)")

console = Console(highlight=False)


class _NoServer:
    """bot_throughput.build registers each bound user with a Bot API server; no bot runs here."""

    class client:  # noqa: N801 - the attribute build() reads
        @staticmethod
        def user(*_args: object, **_kwargs: object) -> None:
            return None


def _child(url: str, kind: str, reads: int, people_file: Path) -> None:
    """Run WARMUP then `reads` reads of `kind`; print the CPU seconds the counted ones took."""
    from bot import queries
    from bot.guard import lookup
    from bot.services import Services
    from models.db import make_engine, transaction
    from models.queries import ledger_counts, reader_scope
    from settings import load_settings

    engine = make_engine(url)
    services = Services(engine=engine, settings=load_settings(DATABASE_URL=url, BOT_TOKEN="1:x"))
    people = pickle.loads(people_file.read_bytes())
    pool = {
        "my": [p for p in people if p["open_items"]],
        "item": [p for p in people if p["items"]],
        "ledger": [p for p in people if p["roles"] & {"leader", "inspector"}],
    }[kind]
    rnd = random.Random(SEED)

    def read(person: dict) -> None:  # type: ignore[type-arg]
        with transaction(engine, read_only=True) as session:
            who = lookup(session, person["user_id"], "zh")
            assert who is not None
            if kind == "my":
                queries._my_view(services, who, 0, single=True)(session)
            elif kind == "item":
                queries._details_view(services, who, rnd.choice(person["items"]))(session)
            else:
                ledger_counts(
                    session,
                    scope=reader_scope(who.actor),
                    facts=services.facts(session),
                    zone=services.settings.zone,
                )

    for n in range(WARMUP):
        read(pool[n % len(pool)])
    started = time.process_time()
    for n in range(reads):
        read(pool[(WARMUP + n) % len(pool)])
    print(f"cpu {time.process_time() - started:.6f}")
    engine.dispose()


def _run_child(url: str, kind: str, reads: int, people_file: Path, counted: bool) -> float:
    command = [sys.executable, __file__, "--child", url, kind, str(reads), str(people_file)]
    if counted:
        command = ["valgrind", "--tool=cachegrind", "--cache-sim=no",
                   "--cachegrind-out-file=/dev/null", *command]  # fmt: skip
    env = dict(os.environ, PYTHONHASHSEED="0")
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} × {reads} failed:\n{done.stderr[-3000:]}")
    if counted:
        found = _INSTRUCTIONS.search(done.stderr)
        if found is None:
            raise SystemExit(f"no instruction count from valgrind:\n{done.stderr[-2000:]}")
        return float(found.group(1).replace(",", ""))
    return float(done.stdout.split()[-1])


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5]))
        return 0
    from bench.bot_throughput import (
        DEFAULT_ITEMS,
        DEFAULT_MEMBERS,
        DEFAULT_ORGS,
        build,
        database,
    )
    from models.db import make_engine

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--reads", type=int, default=DEFAULT_READS)
    parser.add_argument("--time", action="store_true", help="CPU ms per read, no valgrind")
    args = parser.parse_args()
    counted = not args.time
    if counted and shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind); or use --time")
    district = argparse.Namespace(orgs=DEFAULT_ORGS, members=DEFAULT_MEMBERS, items=DEFAULT_ITEMS)
    with tempfile.TemporaryDirectory(prefix="closeout-read-cost-") as folder:
        workdir = Path(folder)
        with database(args.backend, workdir) as url:
            engine = make_engine(url)
            people = build(engine, _NoServer(), district, workdir)
            engine.dispose()
            people_file = workdir / "people.pickle"
            people_file.write_bytes(
                pickle.dumps(
                    [
                        {
                            "user_id": p.user_id,
                            "items": p.items,
                            "open_items": p.open_items,
                            "roles": p.roles,
                        }
                        for p in people
                    ]
                )
            )
            # Two children at a time: instruction counts do not depend on the load.
            with ThreadPoolExecutor(2 if counted else 1) as children:
                runs = {
                    (kind, reads): children.submit(
                        _run_child, url, kind, reads, people_file, counted
                    )
                    for kind in KINDS
                    for reads in ((0, args.reads) if counted else (args.reads,))
                }
                figures = {key: future.result() for key, future in runs.items()}

    unit = "million instructions per read" if counted else "CPU ms per read"
    table = Table(title=f"the bot's database work per read, {args.backend}, {args.reads} reads")
    table.add_column("read")
    table.add_column(unit, justify="right")
    for kind in KINDS:
        if counted:
            value = (figures[(kind, args.reads)] - figures[(kind, 0)]) / args.reads / 1e6
            table.add_row(f"/{kind}", f"{value:.3f}")
        else:
            table.add_row(f"/{kind}", f"{figures[(kind, args.reads)] / args.reads * 1e3:.3f}")
    console.print(table)
    console.print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
