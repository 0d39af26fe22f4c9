"""`closeout sandbox`: try Closeout without a bot token or Telegram.

    closeout sandbox [--port 8080] [--data DIR] [--keep]

A demo district with a ledger due this week, the local Bot API server, the
bot and its follow-ups, and a web chat at http://127.0.0.1:PORT in which you
pick who you are (inspector, secretary, leader, member, admin), talk to the
bot as in a Telegram app, and move the clock forward to watch reminders,
escalations and bulletins arrive. Everything stays on this machine.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import context
from cli.service import configure_logging
from settings import EXIT_BAD_SETTING, SettingsError

if TYPE_CHECKING:
    from sandbox.runner import Sandbox

#: Exit code when the page's port cannot be listened on.
EXIT_PORT = 1


def register(app: typer.Typer) -> None:
    """Add `closeout sandbox` to the `closeout` command."""
    app.command("sandbox")(sandbox)


def sandbox(
    port: Annotated[
        int, typer.Option("--port", "-p", min=0, max=65535, help="Port of the web chat")
    ] = 8080,
    data: Annotated[
        Path,
        typer.Option(
            "--data", file_okay=False, help="Folder for sandbox.db and the dated demo ledger"
        ),
    ] = Path("."),
    keep: Annotated[
        bool,
        typer.Option("--keep", help="Keep sandbox.db (and its clock) instead of starting fresh"),
    ] = False,
) -> None:
    """Try it without Telegram: a demo district, a local Bot API server and a web chat.

    Starts fresh each time (sandbox.db in --data is recreated, its ledger dated
    for today) unless --keep is given. Ctrl-C stops it.
    """
    from sandbox.runner import Sandbox

    configure_logging()
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the fresh database's migrations
    try:
        asyncio.run(_serve(Sandbox(data, port=port, keep=keep)))
    except SettingsError as exc:
        print(f"closeout: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_BAD_SETTING) from None
    except OSError as exc:
        print(
            f"closeout: cannot serve the sandbox on port {port}: {exc.strerror or exc}; "
            "choose another with --port",
            file=sys.stderr,
        )
        raise typer.Exit(EXIT_PORT) from None


async def _serve(sandbox: Sandbox) -> None:
    # Until SIGINT or SIGTERM; whatever started is stopped, also on a failed start.
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await sandbox.start()
    try:
        where = sandbox.addresses
        fresh = "kept" if sandbox.kept else "fresh; --keep keeps it next time"
        context.out.print(
            f"Closeout sandbox: open {where.page} in a browser (Ctrl-C stops it)\n"
            f"  database  {where.database} ({fresh})\n"
            f"  ledger    {where.ledger} (the demo ledger as dated on its first day)\n"
            f"  Bot API   {where.bot_api}<token> (local; Telegram's limits)",
            highlight=False,
        )
        await stopping.wait()
    finally:
        await sandbox.stop()
