"""Spot checks in chat (SPEC §4 `/spotcheck`, §5): the inspectors' side only.

`/spotcheck` lists this month's assignments of the reader's inspection groups
— the units to visit unannounced and the items to look back at, each of the
latter as its item card. `/lookback N pass|fail [finding]` records a
look-back's result; a failure reopens the item and counts a relapse
(models.spotchecks.record_lookback). The inspected units never see any of
this: the guard keeps both commands out of group chats, and a group member
who belongs to an inspected unit is not shown that unit's check.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlmodel import Session
from telegram import Update
from telegram.ext import CommandHandler

from bot.arguments import arguments, first_word, item_number
from bot.cards import item_card
from bot.guard import Who, command, reply
from bot.replies import send
from bot.services import Context, Handler, Services
from models import clock
from models.ledger import get_item
from models.permissions import ADMIN, INSPECTOR
from models.spotchecks import (
    COMPREHENSIVE,
    CheckView,
    assignments_for,
    lookback_of,
    month,
    record_lookback,
)
from models.summaries import ItemSummary, summarize, summarize_many
from models.tables import Item
from models.texts import clip, t

#: Look-back items sent as their own card after the list; the rest are listed only.
CARDS_SHOWN = 10  # cards
#: What people type for a look-back's verdict (English and Chinese).
PASSED = frozenset({"pass", "passed", "ok", "通过", "合格"})
FAILED = frozenset({"fail", "failed", "不通过", "未通过", "不合格"})
#: The roles `/spotcheck` and `/lookback` serve (bot/commands.py lists them for these).
ROLES = frozenset({INSPECTOR, ADMIN})


@dataclass(frozen=True)
class Month:
    """What `/spotcheck` shows: the list, and the look-back items' summaries."""

    text: str
    cards: list[ItemSummary]


def _line(lang: str, view: CheckView, zone: ZoneInfo) -> str:
    check, item = view.check, view.item
    if check.kind == COMPREHENSIVE or item is None:
        line = t(
            lang,
            "spotcheck_unit_line",
            name=view.org.name,
            code=view.org.code,
            group=view.group_name,
        )
    else:
        closed = item.closed_at.astimezone(zone).date().isoformat() if item.closed_at else "—"
        line = t(
            lang,
            "lookback_item_line",
            number=item.number,
            title=item.title,
            org=view.org.name,
            closed=closed,
            group=view.group_name,
        )
    if check.done_at is not None:
        line += t(lang, "spotcheck_passed" if check.passed else "spotcheck_failed")
    return line


def month_view(services: Services, who: Who, session: Session) -> Month:
    """This month's checks of the reader's groups, as text and look-back cards."""
    zone = services.settings.zone
    period = month(None, clock.today(zone))
    views = assignments_for(session, who.actor, period)
    if not views:
        return Month(t(who.lang, "spotcheck_none", period=period.key), [])
    units = [view for view in views if view.check.kind == COMPREHENSIVE]
    lookbacks = [view for view in views if view.check.kind != COMPREHENSIVE and view.item]
    lines = [t(who.lang, "spotcheck_header", period=period.key)]
    if units:
        lines.append(t(who.lang, "spotcheck_units"))
        lines += [_line(who.lang, view, zone) for view in units]
    if lookbacks:
        lines.append(t(who.lang, "spotcheck_lookbacks"))
        lines += [_line(who.lang, view, zone) for view in lookbacks]
        lines.append(t(who.lang, "lookback_how"))
    items: list[Item] = [view.item for view in lookbacks if view.item is not None]
    summaries = summarize_many(
        session, items[:CARDS_SHOWN], services.facts(session), reader=who.actor
    )
    return Month(clip("\n".join(lines)), summaries)


@command()
async def spotcheck(update: Update, context: Context, who: Who) -> None:
    """Show this month's spot checks and look-backs of your inspection groups."""
    if not who.actor.roles & ROLES:
        await reply(update, t(who.lang, "spotcheck_inspectors_only"))
        return
    services = context.services
    shown = await services.db(lambda session: month_view(services, who, session))
    await reply(update, shown.text)
    for summary in shown.cards:
        await send(update, context, who, item_card(who.lang, summary))


def verdict(word: str) -> bool | None:
    """True for pass, False for fail, None for anything else."""
    word = word.strip().lower()
    if word in PASSED:
        return True
    if word in FAILED:
        return False
    return None


@command()
async def lookback(update: Update, context: Context, who: Who) -> None:
    """Record a look-back: /lookback N pass, or /lookback N fail WHAT YOU FOUND."""
    if not who.actor.roles & ROLES:
        await reply(update, t(who.lang, "spotcheck_inspectors_only"))
        return
    message = update.effective_message
    word, rest = first_word(arguments(message.text if message else ""))
    said, finding = first_word(rest)
    passed = verdict(said)
    if not word or passed is None:
        await reply(update, t(who.lang, "usage_lookback"))
        return
    number = item_number(word)
    services = context.services

    def work(session: Session) -> ItemSummary:
        check = lookback_of(session, who.actor, number)
        assert check.id is not None  # a stored check
        record_lookback(session, who.actor, check.id, passed, finding)
        item = get_item(session, number)
        return summarize(session, item, services.facts(session), reader=who.actor)

    summary = await services.db(work)
    intro = t(who.lang, "did_lookback_pass" if passed else "did_lookback_fail", number=number)
    await send(update, context, who, item_card(who.lang, summary, intro=intro))


def handlers() -> list[Handler]:
    """Spot checks and look-backs, for inspectors."""
    return [
        CommandHandler("spotcheck", spotcheck),
        CommandHandler("lookback", lookback),
    ]
