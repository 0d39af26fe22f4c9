"""`closeout run`, `bot`, `worker` and `notifications`: the processes that
deliver, and what they delivered.

    closeout run                      the bot, an in-process worker, the scheduler and the
                                      pump in one process (the embedded default)
    closeout bot                      the bot alone; with REDIS_URL it enqueues pushes there
    closeout worker [-p N] [-t N]     Dramatiq worker processes on the Redis broker
    closeout notifications [--failed] [--pending] [--limit N]
                                      the outbox: what was sent, what waits, what failed

`worker` runs Dramatiq's own process manager (`dramatiq.cli.main`), which
forks the worker processes; each child sets the broker up from the settings
(`boot_worker_process`, given to Dramatiq as the broker "callable").
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from contextlib import ExitStack
from datetime import datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table
from sqlmodel import Session, col, select

from cli import context
from cli.service import (
    configure_logging,
    exit_cleanly_on_sigterm,
    pin_cpu,
    require_token,
    serve_bot,
)
from models import clock
from models.tables import Member, Notification
from settings import Settings

log = logging.getLogger(__name__)

#: Worker threads per `closeout worker` process (Bot API calls wait on the network).
WORKER_THREADS = 8
#: Rows `closeout notifications` lists unless told otherwise.
LIST_LIMIT = 50
#: Seconds `closeout run` waits for jobs in progress when it stops.
STOP_TIMEOUT = 30  # seconds
#: Environment variable carrying `closeout worker`'s options to its processes.
_OPTIONS_ENV = "CLOSEOUT_WORKER_OPTIONS"

NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--redis-namespace",
        help="Prefix of the Redis keys (default: closeout); deployments sharing a Redis differ",
    ),
]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `closeout` command."""
    app.command("run")(run)
    app.command("bot")(bot)
    app.command("worker")(worker)
    app.command("notifications")(notifications)


# -- closeout worker ---------------------------------------------------------------------------


def worker(
    processes: Annotated[int, typer.Option("--processes", "-p", min=1, help="Processes")] = 1,
    threads: Annotated[
        int, typer.Option("--threads", "-t", min=1, help="Worker threads per process")
    ] = WORKER_THREADS,
    namespace: NamespaceOption = None,
    global_per_second: Annotated[
        int | None,
        typer.Option(min=1, help="Sends a second overall (default 30, Telegram's)"),
    ] = None,
    chat_per_second: Annotated[
        float | None, typer.Option(min=0.01, help="Sends a second in one chat (default 1)")
    ] = None,
    group_per_minute: Annotated[
        int | None, typer.Option(min=1, help="Sends a minute in one group (default 20)")
    ] = None,
    bundle_max: Annotated[
        int | None, typer.Option(min=1, help="Notifications bundled in one message (default 10)")
    ] = None,
) -> None:
    """Run Dramatiq workers for every actor on the Redis broker (REDIS_URL).

    Start as many as you like, on as many hosts: they share the queue and one
    flood limiter in Redis. The rate options are for a self-hosted Bot API
    server with other limits, and for benchmarks.
    """
    settings = context.settings()
    if not settings.REDIS_URL:
        print(
            "closeout: bad setting REDIS_URL: `closeout worker` needs Redis "
            "(without it, `closeout run` delivers in-process)",
            file=sys.stderr,
        )
        raise typer.Exit(2)
    os.environ[_OPTIONS_ENV] = json.dumps(
        {
            "namespace": namespace,
            "global_per_second": global_per_second,
            "chat_per_second": chat_per_second,
            "group_per_minute": group_per_minute,
            "bundle_max": bundle_max,
        }
    )
    from dramatiq import cli as dramatiq_cli

    args = dramatiq_cli.make_argument_parser().parse_args(
        [f"{__name__}:boot_worker_process", "--processes", str(processes)]
        + ["--threads", str(threads)]
    )
    raise typer.Exit(dramatiq_cli.main(args) or 0)


def boot_worker_process() -> None:
    """In each worker process: the settings, the broker, the runtime, the actors."""
    from settings import load_or_exit
    from tasks import load_actors
    from tasks.limiter import Rates

    logging.getLogger("httpx").setLevel(logging.WARNING)
    options = json.loads(os.environ.get(_OPTIONS_ENV) or "{}")
    defaults = Rates()
    rates = Rates(
        global_per_second=options.get("global_per_second") or defaults.global_per_second,
        chat_per_second=options.get("chat_per_second") or defaults.chat_per_second,
        group_per_minute=options.get("group_per_minute") or defaults.group_per_minute,
    )
    load_actors(
        load_or_exit(),
        namespace=options.get("namespace"),
        rates=rates,
        bundle_max=options.get("bundle_max"),
    )


# -- closeout run / bot ----------------------------------------------------------------------


def run(
    threads: Annotated[
        int, typer.Option("--threads", "-t", min=1, help="Worker threads for the jobs")
    ] = 4,
    namespace: NamespaceOption = None,
) -> None:
    """Serve everything in one process: the bot, a job worker, the scheduler and the pump.

    Without REDIS_URL the jobs queue in memory; notifications are rows in the
    database, and the pump enqueues any that a restart left behind.
    """
    exit_cleanly_on_sigterm()
    from tasks import load_actors
    from tasks.broker import start_embedded_worker
    from tasks.scheduler import start_scheduler

    settings = context.settings()
    require_token(settings)
    configure_logging()
    pin_cpu(settings)
    rt = load_actors(settings, engine=context.engine(), namespace=namespace)
    from tasks.delivery import PUMP_INTERVAL, enqueue_changes, pump_once  # declared on rt.broker

    with ExitStack() as started:  # stopped in reverse, whenever SIGTERM comes
        started.callback(rt.broker.close)
        jobs = start_embedded_worker(rt.broker, threads=threads)
        started.callback(jobs.stop, timeout=STOP_TIMEOUT * 1000)
        stop = threading.Event()

        def pump_loop() -> None:
            # The in-memory queue starts empty: every due row is owed a job now.
            first = settings.REDIS_URL is None
            while not stop.is_set():
                try:
                    if first:
                        pump_once(rt, grace=timedelta(0), fresh_grace=timedelta(0))
                    else:
                        pump_once(rt)
                    first = False
                except Exception:  # noqa: BLE001 - the next look tries again
                    log.warning("pump failed", exc_info=True)
                stop.wait(PUMP_INTERVAL)

        pumper = threading.Thread(target=pump_loop, name="closeout-pump", daemon=True)
        pumper.start()
        started.callback(pumper.join, PUMP_INTERVAL + 1)
        started.callback(stop.set)
        # The calendar (sweep, bulletins, spot checks, recurring duties, look-backs;
        # it enqueues `pump` too, which only repeats this process's own look).
        calendar = start_scheduler(settings, rt.broker, engine=rt.engine, namespace=namespace)
        started.callback(calendar.stop)
        log.info(
            "running: bot, %d job threads, scheduler, pump every %.0f s", threads, PUMP_INTERVAL
        )
        serve_bot(settings, enqueue=enqueue_changes)


def bot(namespace: NamespaceOption = None) -> None:
    """Serve the bot: polling, or a webhook when WEBHOOK_URL is set.

    With REDIS_URL, pushes a change owes are enqueued for `closeout worker`
    at once; without it, run `closeout run` instead (or the pump delivers them).
    """
    exit_cleanly_on_sigterm()
    settings = context.settings()
    configure_logging()
    pin_cpu(settings)
    enqueue = None
    if settings.REDIS_URL:
        from tasks import load_actors

        load_actors(settings, engine=context.engine(), namespace=namespace)
        from tasks.delivery import enqueue_changes  # declared on the Redis broker

        enqueue = enqueue_changes
    else:
        log.warning(
            "REDIS_URL is unset: this bot process delivers nothing itself; "
            "`closeout run` serves the bot and delivers in one process"
        )
    serve_bot(settings, enqueue=enqueue)


# -- closeout notifications ------------------------------------------------------------------


def notifications(
    failed: Annotated[bool, typer.Option("--failed", help="Only what was not delivered")] = False,
    pending: Annotated[bool, typer.Option("--pending", help="Only what waits")] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Rows at most")] = LIST_LIMIT,
) -> None:
    """List the outbox, newest first: what was sent, what waits and why, what failed."""
    settings = context.settings()
    statuses = [s for s, wanted in (("failed", failed), ("pending", pending)) if wanted]
    with Session(context.engine()) as session:
        query = select(Notification).order_by(col(Notification.id).desc()).limit(limit)
        if statuses:
            query = query.where(col(Notification.status).in_(statuses))
        rows = list(session.exec(query).all())
        members = {
            m.id: m
            for m in session.exec(
                select(Member).where(col(Member.id).in_({r.recipient_id for r in rows}))
            )
        }
    if not rows:
        context.out.print("No notifications" + (f" ({', '.join(statuses)})" if statuses else ""))
        return
    table = Table(box=None, pad_edge=False)
    for name in ("id", "stage", "item", "recipient", "status", "tries", "created", "sent/next"):
        table.add_column(name, no_wrap=True)
    table.add_column("last_error", overflow="fold", min_width=20)
    for row in rows:
        member = members.get(row.recipient_id)
        recipient = f"{member.code} {member.name}" if member else f"chat {row.chat_id}"
        table.add_row(
            str(row.id),
            row.stage,
            f"#{row.item_number}" if row.item_number else "",
            recipient,
            row.status,
            str(row.attempts),
            _local(settings, row.created_at),
            _next(settings, row),
            row.last_error or "",
        )
    context.out.print(table)


def _local(settings: Settings, moment: datetime | None) -> str:
    return clock.local(moment, settings.zone).strftime("%m-%d %H:%M") if moment else ""


def _next(settings: Settings, row: Notification) -> str:
    # When it went, or (in brackets) when a pending row may go next.
    if row.sent_at is not None:
        return _local(settings, row.sent_at)
    if row.status == "pending" and row.not_before is not None:
        return f"({_local(settings, row.not_before)})"
    return ""
