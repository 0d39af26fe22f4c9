"""`closeout import directory|ledger PATH`: all-or-nothing, idempotent imports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from cli import context
from models.db import transaction
from models.directory import apply_directory, read_directory
from models.ledger_import import apply_ledger, read_ledger
from models.sheets import ImportRefused

app = typer.Typer(help="Import the directory or an existing ledger.", no_args_is_help=True)


@contextmanager
def progress(label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress callback drawing a bar on a terminal; None when nobody watches."""
    if not context.progress_bar_enabled():
        yield None
        return
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=context.err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@app.command()
def directory(
    path: Annotated[Path, typer.Argument(help="An .xlsx workbook or a folder of CSVs")],
) -> None:
    """Import orgs, members and inspection groups (upsert by code)."""
    try:
        with transaction(context.engine()) as session, progress("directory") as report:
            changes = apply_directory(
                session, read_directory(path, session=session), progress=report
            )
    except ImportRefused as refused:
        raise context.refuse(
            refused.errors, summary=f"{len(refused.errors)} problem(s); nothing was imported"
        ) from None
    context.out.print(
        f"orgs: {changes.orgs_added} added, {changes.orgs_changed} changed; "
        f"members: {changes.members_added} added, {changes.members_changed} changed; "
        f"groups: {changes.groups_added} added, {changes.groups_changed} changed"
    )


@app.command()
def ledger(
    path: Annotated[Path, typer.Argument(help="An .xlsx workbook (its first sheet) or a .csv")],
) -> None:
    """Import an existing ledger (upsert by external_ref)."""
    zone = context.settings().zone
    try:
        with transaction(context.engine()) as session, progress("ledger") as report:
            changes = apply_ledger(
                session, read_ledger(path, session=session, zone=zone), progress=report
            )
    except ImportRefused as refused:
        raise context.refuse(
            refused.errors, summary=f"{len(refused.errors)} problem(s); nothing was imported"
        ) from None
    context.out.print(
        f"ledger: {changes.added} added, {changes.updated} updated, {changes.unchanged} unchanged"
    )
