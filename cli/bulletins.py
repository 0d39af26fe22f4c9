"""`closeout bulletin daily|weekly|monthly|quarterly [--dry-run] [--period KEY]`.

Owes the bulletin to every chat BULLETIN_CHATS configures for the kind, once
per period (models.bulletins); the delivery jobs send it (the pump picks the
rows up, also when this runs in another shell). `--dry-run` writes nothing:
it prints each scope's text and writes the attachments to a temporary
folder, printing their paths.
"""

from __future__ import annotations

import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from cli import context
from models.bulletins import (
    Bulletin,
    UnknownScope,
    bulletin_facts,
    bulletins_for_review,
    default_period,
    owe_bulletins,
)
from models.db import transaction
from models.rankings import Period, parse_period


class Kind(StrEnum):
    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"
    quarterly = "quarterly"


def _period(kind: Kind, key: str | None, today_period: Period) -> Period:
    if key is None:
        return today_period
    try:
        return parse_period(key, kind.value)
    except ValueError as exc:
        raise context.refuse(f"--period: {exc}") from None


def bulletin(
    kind: Annotated[Kind, typer.Argument(help="daily, weekly, monthly or quarterly")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the text and write the files; owe nothing")
    ] = False,
    period: Annotated[
        str | None,
        typer.Option(
            "--period",
            help="2026-03-02, 2026-W10, 2026-03 or 2026-Q1 (default: today for daily, "
            "else the last complete week, month or quarter)",
        ),
    ] = None,
) -> None:
    """Owe a bulletin ("four ones") to the chats configured for it, once per period."""
    settings = context.settings()
    zone = settings.zone
    chats = settings.BULLETIN_CHATS
    if dry_run:
        with Session(context.engine()) as session:
            facts = bulletin_facts(
                session, zone=zone, warn_days=settings.WARN_DAYS, lang=settings.LANGUAGE
            )
            chosen = _period(kind, period, default_period(kind.value, facts.today))
            try:
                built = bulletins_for_review(session, kind.value, chosen, chats, bf=facts)
            except UnknownScope as unknown:
                raise context.refuse(
                    f"BULLETIN_CHATS names org {unknown}, which does not exist"
                ) from None
        _print_review(kind, chosen, built, configured=any(c.kind == kind.value for c in chats))
        return
    with transaction(context.engine()) as session:
        facts = bulletin_facts(
            session, zone=zone, warn_days=settings.WARN_DAYS, lang=settings.LANGUAGE
        )
        chosen = _period(kind, period, default_period(kind.value, facts.today))
        results = owe_bulletins(session, kind.value, chosen, chats, bf=facts)
    if not results:
        context.err.print(f"no chat in BULLETIN_CHATS takes {kind.value} bulletins; nothing owed")
        return
    for result in results:
        scope = result.scope_code or "all"
        context.out.print(
            f"{kind.value} {chosen.key} → chat {result.chat_id} ({scope}): {result.outcome}"
        )
    if any(result.outcome == "unknown_scope" for result in results):
        raise typer.Exit(context.EXIT_REFUSED)


def _print_review(
    kind: Kind,
    period: Period,
    built: list[tuple[str | None, list[int], Bulletin]],
    *,
    configured: bool,
) -> None:
    if not configured:
        context.err.print(
            f"no chat in BULLETIN_CHATS takes {kind.value} bulletins; showing the whole tree's"
        )
    folder = Path(tempfile.mkdtemp(prefix=f"closeout-{kind.value}-{period.key}-"))
    for code, chat_ids, bulletin in built:
        chats = ", ".join(map(str, chat_ids)) or "no chat"
        context.out.print(f"== {kind.value} {period.key} · {code or 'all'} → {chats} ==")
        if bulletin.empty:
            context.out.print("(nothing to report: would not be sent)")
        for lang, text in bulletin.text.items():
            context.out.print(f"-- {lang} --")
            context.out.print(text, markup=False)
        for file in bulletin.files:
            path = folder / file.name
            path.write_bytes(file.content)
            context.out.print(f"attachment: {path}")
