"""`closeout db upgrade`: create or upgrade the schema."""

from __future__ import annotations

import typer

from cli import context
from models.db import upgrade as upgrade_schema

app = typer.Typer(help="The database schema.", no_args_is_help=True)


@app.command()
def upgrade() -> None:
    """Create or upgrade the database schema to the newest revision."""
    url = context.settings().DATABASE_URL
    upgrade_schema(url)
    context.err.print(f"database is up to date ({url.split('@')[-1]})")
