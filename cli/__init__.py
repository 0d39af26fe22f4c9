"""The `closeout` command: one entry point wiring settings, models, bot and tasks.

Each command family lives in its own module; this one assembles them. Nothing
is read or connected until a command runs, so `closeout --help` needs no setup.
"""

from __future__ import annotations

import typer

from cli import audit, bulletins, database, exports, holidays, imports, invites, scheduler, worker
from cli import sandbox as sandbox_command

app = typer.Typer(
    name="closeout",
    help="Closeout: three lists, one ledger, until every item is closed off.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(database.app, name="db")
app.add_typer(imports.app, name="import")
app.add_typer(audit.app, name="audit")
app.add_typer(holidays.app, name="holidays")
app.command("bulletin", no_args_is_help=True)(bulletins.bulletin)
app.command("invite", no_args_is_help=True)(invites.invite)
app.command("export")(exports.export)
worker.register(app)  # run, bot, worker, notifications
scheduler.register(app)  # scheduler, sweep
sandbox_command.register(app)  # sandbox


def main() -> None:
    app()
