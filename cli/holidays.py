"""`closeout holidays import FILE`: load a year's holidays and make-up workdays."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import context
from models.db import transaction
from models.holidays import import_holidays
from models.sheets import ImportRefused
from models.workdays import read_holiday_file

app = typer.Typer(help="The working-day calendar.", no_args_is_help=True)


@app.command(name="import")
def import_file(
    path: Annotated[Path, typer.Argument(help="CSV or .xlsx with date, is_workday[, name]")],
) -> None:
    """Load days (date, is_workday) that override the official calendar."""
    try:
        rows = read_holiday_file(path)
    except ImportRefused as refused:
        raise context.refuse(
            refused.errors, summary=f"{len(refused.errors)} problem(s); nothing was imported"
        ) from None
    with transaction(context.engine()) as session:
        added, changed = import_holidays(session, rows)
    years = sorted({row.day.year for row in rows})
    context.out.print(
        f"holidays: {added} added, {changed} changed ({', '.join(map(str, years)) or 'no days'})"
    )
