"""`closeout export`: the whole ledger (or a subtree of it) as .xlsx, .csv or .json."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlmodel import Session

from cli import context
from models import clock
from models.export import ExportRefused, export_rows, write_csv, write_json, write_xlsx
from models.holidays import load_calendar


class Format(StrEnum):
    xlsx = "xlsx"
    csv = "csv"
    json = "json"


Rows = Iterable[Mapping[str, Any]]


def export(
    output_format: Annotated[Format, typer.Option("--format", "-f", help="xlsx, csv or json")],
    org: Annotated[
        str | None, typer.Option("--org", help="Only this org's subtree (an org code)")
    ] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="problem|commitment|task|responsibility")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="open|in_progress|submitted|closed|cancelled"),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write here (default: standard output)"),
    ] = None,
) -> None:
    """Export the ledger and the three lists: one row per item.

    Without -o, csv and json go to standard output; xlsx too, but only when
    that is redirected, never onto a terminal. With -o the file appears
    complete or not at all. CSV is UTF-8 with a BOM, for Excel.
    """
    if output_format is Format.xlsx and output is None and sys.stdout.isatty():
        raise context.refuse("xlsx is binary: name a file with -o FILE, or redirect the output")
    settings = context.settings()
    zone = settings.zone
    with Session(context.engine()) as session:
        try:
            rows = export_rows(
                session,
                today=clock.today(zone),
                calendar=load_calendar(session),
                warn_days=settings.WARN_DAYS,
                zone=zone,
                org_code=org,
                kind=kind,
                status=status,
            )
        except ExportRefused as refused:
            raise context.refuse(str(refused)) from None
        if output is None:
            count = _to_stdout(output_format, rows)
        else:
            count = _to_file(output_format, rows, output)
    context.err.print(f"{count} item(s) exported" + (f" to {output}" if output else ""))


def _to_stdout(output_format: Format, rows: Rows) -> int:
    if output_format is Format.xlsx:
        return write_xlsx(rows, sys.stdout.buffer)
    # UTF-8 whatever the locale says, and no newline translation inside CSV rows.
    stream = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
    try:
        writer = write_csv if output_format is Format.csv else write_json
        return writer(rows, stream)
    finally:
        stream.flush()
        stream.detach()


def _to_file(output_format: Format, rows: Rows, output: Path) -> int:
    # Write beside the target and rename at the end: a failed export leaves no half file.
    partial = output.with_name(output.name + ".part")
    writers: dict[Format, Callable[[Rows, Path], int]] = {
        Format.xlsx: write_xlsx,
        Format.csv: write_csv,
        Format.json: write_json,
    }
    try:
        count = writers[output_format](rows, partial)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    return count
