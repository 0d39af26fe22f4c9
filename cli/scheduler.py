"""`closeout scheduler` and `closeout sweep [--dry-run]`: the calendar, and the ladder now.

closeout scheduler        the calendar (tasks.scheduler) in the foreground: it enqueues the
                          periodic actors on the Redis broker for `closeout worker`; start
                          two for safety, only the lease holder fires
closeout sweep [--dry-run] [--json]
                          the reminder/escalation sweep now, in this process: it writes the
                          outbox rows (the pump of `closeout run` or of the workers delivers
                          them) and prints what it owed; --dry-run writes nothing and says
                          what it would owe
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from typing import Annotated

import typer
from rich.table import Table
from sqlmodel import Session

from cli import context
from cli.service import configure_logging
from models import clock
from models.db import transaction
from models.holidays import load_calendar
from models.summaries import Facts
from models.sweep import SweepReport
from models.sweep import sweep as sweep_ladder


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `closeout` command."""
    app.command("scheduler")(scheduler)
    app.command("sweep")(sweep)


def scheduler(
    namespace: Annotated[
        str | None,
        typer.Option(
            "--redis-namespace",
            help="Prefix of the Redis keys (default: closeout); deployments sharing a Redis differ",
        ),
    ] = None,
) -> None:
    """Run the calendar: sweeps, bulletins, spot checks, recurring duties, look-backs, the pump.

    Enqueues the actors on the Redis broker for `closeout worker`. Only the
    scheduler holding the lease fires; a second one waits and takes over.
    """
    settings = context.settings()
    if not settings.REDIS_URL:
        print(
            "closeout: bad setting REDIS_URL: `closeout scheduler` needs Redis "
            "(without it, `closeout run` keeps the calendar in-process)",
            file=sys.stderr,
        )
        raise typer.Exit(2)
    configure_logging()
    from tasks import load_actors
    from tasks.scheduler import Scheduler, make_lease, run_forever

    rt = load_actors(settings, engine=context.engine(), namespace=namespace)
    calendar = Scheduler(
        rt.broker,
        make_lease(settings, engine=rt.engine, namespace=namespace),
        zone=settings.zone,
    )
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        run_forever(calendar, stopping)
    finally:
        calendar.stop()
        rt.broker.close()


def sweep(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write nothing; say what would be owed")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Run the reminder/escalation sweep now (SPEC §5); running it again owes nothing new."""
    settings = context.settings()
    engine = context.engine()

    def run(session: Session, on_batch: Callable[[SweepReport], None] | None = None) -> SweepReport:
        facts = Facts(
            today=clock.today(settings.zone),
            calendar=load_calendar(session),
            warn_days=settings.WARN_DAYS,
        )
        return sweep_ladder(
            session,
            facts,
            remind_days=settings.REMIND_DAYS,
            escalate_days=settings.ESCALATE_DAYS,
            language=settings.LANGUAGE,
            dry_run=dry_run,
            on_batch=on_batch,
        )

    if dry_run:
        with Session(engine) as session:
            report = run(session)
    else:
        with transaction(engine) as session:
            report = run(session, on_batch=lambda _: session.commit())
    if as_json:
        context.out.print_json(json.dumps(report.as_dict(), ensure_ascii=False))
        return
    _print(report)


def _print(report: SweepReport) -> None:
    would = " (dry run: nothing written)" if report.dry_run else ""
    context.out.print(f"sweep {report.today.isoformat()}{would}: {report.candidates} candidate(s)")
    summary = report.as_dict()
    if summary["stages"]:
        table = Table(box=None, pad_edge=False)
        table.add_column("stage")
        table.add_column("items reached", justify="right")
        table.add_column("would owe" if report.dry_run else "newly owed", justify="right")
        for stage, items in summary["stages"].items():
            table.add_row(stage, str(items), str(report.owed.get(stage, 0)))
        context.out.print(table)
    verb = "would escalate" if report.dry_run else "escalated"
    levels: dict[int, int] = {}
    for _, level in report.escalated:
        levels[level] = levels.get(level, 0) + 1
    by_level = ", ".join(f"level {level}: {n}" for level, n in sorted(levels.items()))
    context.out.print(
        f"{verb}: {len(report.escalated)} item(s)" + (f" ({by_level})" if by_level else "")
    )
    notices = ", ".join(report.notices) or "none"
    context.out.print(
        f"{'would draft' if report.dry_run else 'drafted'} inquiry notices: {notices}"
    )
    total = "would be owed" if report.dry_run else "owed"
    context.out.print(f"notifications {total}: {report.total_owed}")
