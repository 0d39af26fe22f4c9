"""`closeout audit verify`: check the history's hash chain."""

from __future__ import annotations

import typer
from sqlmodel import Session

from cli import context
from models.audit import verify_chain

app = typer.Typer(help="The tamper-evident history.", no_args_is_help=True)


@app.command()
def verify() -> None:
    """Check every link of the history; name the first broken one (exit 1)."""
    with Session(context.engine()) as session:
        report = verify_chain(session)
    if not report.ok:
        raise context.refuse(f"history is broken: {report.broken}")
    context.out.print(f"history intact: {report.checked} events checked")
