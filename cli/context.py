"""What every command needs: the settings, an engine, a console for messages."""

from __future__ import annotations

import sys
from functools import lru_cache

import typer
from rich.console import Console
from sqlalchemy import Engine

from models.db import make_engine
from settings import Settings, load_or_exit

#: Exit code when the input is refused (bad file, unknown code): nothing was written.
EXIT_REFUSED = 1

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def settings() -> Settings:
    return load_or_exit()


@lru_cache(maxsize=1)
def engine() -> Engine:
    return make_engine(settings().DATABASE_URL)


def refuse(lines: list[str] | str, *, summary: str | None = None) -> typer.Exit:
    """Print what was wrong, one problem a line, and return the exit to raise."""
    for line in [lines] if isinstance(lines, str) else lines:
        print(line, file=sys.stderr)
    if summary:
        err.print(summary)
    return typer.Exit(EXIT_REFUSED)


def progress_bar_enabled() -> bool:
    """A progress bar only when a person watches a terminal."""
    return sys.stderr.isatty()
