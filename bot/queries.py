"""The read side of SPEC §4: /my, /item, /ledger, /overdue, /lists, /export, and
the buttons that page through a list (`pg`) or open an item's details (`itm`).

Nothing here decides who sees what: `models.queries` reads only what the
reader's scope allows (models.permissions), and every button press re-runs its
query for the person who pressed it, so a forged page button shows the
presser's own items and nothing else.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session
from telegram import Update
from telegram.error import BadRequest
from telegram.ext import CallbackQueryHandler, CommandHandler

from bot import callbacks
from bot.arguments import item_number
from bot.cards import Button, Card, item_card, item_line, list_card, pager
from bot.guard import Who, button, command, is_group, reading, reply
from bot.replies import card_for, markup, send
from bot.services import Context, Handler, Services
from models.export import export_rows, write_xlsx
from models.ledger import InputRefused
from models.queries import (
    LIGHTS,
    ItemDetails,
    ItemPage,
    LedgerCounts,
    item_details,
    ledger_counts,
    lists_org,
    lists_org_by_id,
    milestones_of,
    my_items,
    narrow_scope,
    org_in_scope,
    org_scope,
    overdue_items,
    reader_scope,
    scope_roots,
    three_lists,
)
from models.roles import STATUSES
from models.summaries import ItemSummary, summarize_many
from models.tables import Milestone, Org
from models.texts import clip, event_word, status_word, t

# The views a page button can ask for (callback verb `pg`, arg "VIEW[.ORG_ID]").
MY = "my"
OVERDUE = "overdue"
LISTS = "lists"
#: "#N" details buttons in one row under a list.
DETAILS_PER_ROW = 5
#: Characters allowed in an export's file name; others become "_".
_FILE_SAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class Scope:
    """What a ledger-wide reply covers: org-path prefixes (None = everything),
    the org the reader named (if any) and how to name the scope to a person."""

    paths: tuple[str, ...] | None
    org: Org | None
    roots: tuple[Org, ...]

    def label(self, lang: str) -> str:
        orgs = (self.org,) if self.org is not None else self.roots
        if not orgs:
            return t(lang, "scope_all")
        return "、".join(f"{org.name}（{org.code}）" for org in orgs)

    def file_tag(self) -> str:
        orgs = (self.org,) if self.org is not None else self.roots
        tag = "+".join(org.code for org in orgs) or "all"
        return _FILE_SAFE.sub("_", tag)[:40]

    def page_arg(self) -> str:
        # Org ids, not codes: always digits, so they fit the callback pattern.
        return str(self.org.id) if self.org is not None else ""


def _scope(session: Session, paths: tuple[str, ...] | None, text: str) -> Scope:
    narrowed, org = narrow_scope(session, paths, text)
    return Scope(narrowed, org, tuple(scope_roots(session, narrowed)) if org is None else ())


def _org_text(context: Context) -> str:
    return " ".join(context.args or []).strip()


# --- rendering: pure functions of what the queries returned -------------------------


def _local(moment: datetime, zone: ZoneInfo) -> str:
    # Stored times are UTC; SQLite hands them back naive.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _step(lang: str, step: Milestone, today: date) -> str:
    mark = "✅" if step.done_at is not None else "⬜"
    late = step.done_at is None and step.due_date < today
    text = f"{mark} {step.due_date.isoformat()} {step.title}"
    return text + (t(lang, "step_behind") if late else "")


def details_card(lang: str, details: ItemDetails, *, today: date, zone: ZoneInfo) -> Card:
    """The item card with its roadmap, evidence, extensions and latest history."""
    card = item_card(lang, details.summary)
    summary = details.summary
    lines = [card.text]
    if details.milestones:
        lines.append(t(lang, "card_milestones"))
        lines += [_step(lang, step, today) for step in details.milestones]
    facts = [t(lang, "card_evidence", count=summary.evidence_count)]
    if details.extension_requests:
        facts.append(
            t(
                lang,
                "details_extensions",
                count=details.extension_requests,
                approved=summary.extensions,
            )
        )
    if summary.pending_extension_due is not None:
        facts.append(
            t(lang, "details_extension_pending", due=summary.pending_extension_due.isoformat())
        )
    lines.append(" · ".join(facts))
    if details.history:
        lines.append(t(lang, "card_history"))
        for event in details.history:
            line = t(
                lang,
                "history_line",
                when=_local(event.at, zone),
                action=event_word(lang, event.action),
                actor=event.actor_name or t(lang, "history_system"),
            )
            if event.reason:
                line += t(lang, "history_reason", reason=event.reason)
            lines.append(line)
    return replace(card, text=clip("\n".join(lines)))


def _details_rows(summaries: Sequence[ItemSummary]) -> tuple[tuple[Button, ...], ...]:
    # One "#N" button per listed item, opening its details (checked again on press).
    buttons = [
        (f"#{summary.number}", callbacks.encode("details", summary.number, summary.version))
        for summary in summaries
    ]
    return tuple(
        tuple(buttons[start : start + DETAILS_PER_ROW])
        for start in range(0, len(buttons), DETAILS_PER_ROW)
    )


def _page_card(
    lang: str,
    title: str,
    summaries: Sequence[ItemSummary],
    page: ItemPage,
    view: str,
    arg: str = "",
) -> Card:
    lines = [item_line(lang, summary) for summary in summaries]
    buttons = _details_rows(summaries) + pager(lang, view, page.page, page.pages, arg)
    return list_card(lang, title, lines, buttons)


def ledger_text(lang: str, scope: Scope, counts: LedgerCounts) -> str:
    """Counts by status and light, overdue and the on-time rate, in a few lines."""
    statuses = " · ".join(
        f"{status_word(lang, status)} {counts.by_status[status]}" for status in STATUSES
    )
    lights = t(lang, "ledger_lights", **{light: counts.by_light[light] for light in LIGHTS})
    rate = counts.on_time_rate
    on_time = (
        t(lang, "ledger_on_time_none")
        if rate is None
        else t(
            lang,
            "ledger_on_time",
            rate=f"{rate:.0%}",
            on_time=counts.closed_on_time,
            closed=counts.closed_with_due,
        )
    )
    return "\n".join(
        [
            t(lang, "ledger_header", scope=scope.label(lang)),
            t(lang, "ledger_total", total=counts.total) + statuses,
            lights,
            t(lang, "ledger_overdue", count=counts.overdue),
            on_time,
        ]
    )


def _lists_card(
    lang: str,
    org: Org,
    page: ItemPage,
    summaries: Sequence[ItemSummary],
    steps: dict[int, list[Milestone]],
    today: date,
) -> Card:
    if not page.total:
        return Card(t(lang, "lists_empty", org=org.name))
    lines: list[str] = []
    kind = None
    for summary in summaries:
        if summary.kind != kind:
            kind = summary.kind
            lines.append(t(lang, f"lists_{kind}"))
        lines.append(item_line(lang, summary))
        lines.append("  " + t(lang, "card_responsible", name=summary.responsible_name or "—"))
        roadmap = steps.get(summary.number, [])
        if roadmap:
            lines.append("  " + t(lang, "card_milestones"))
            lines += ["    " + _step(lang, step, today) for step in roadmap]
        else:
            lines.append("  " + t(lang, "lists_no_roadmap"))
    title = t(lang, "lists_header", org=f"{org.name}（{org.code}）", total=page.total)
    buttons = _details_rows(summaries) + pager(lang, LISTS, page.page, page.pages, str(org.id))
    return list_card(lang, title, lines, buttons)


# --- the views: one transaction each, for the person asking -------------------------


def _my_view(services: Services, who: Who, page: int, *, single: bool) -> Callable[[Session], Card]:
    # With `single`, a list of exactly one item is that item's full card instead.
    def work(session: Session) -> Card:
        facts = services.facts(session)
        found = my_items(session, who.actor, page=page)
        if single and found.total == 1:
            return card_for(session, facts, who, found.items[0])
        if not found.total:
            return Card(t(who.lang, "my_empty"))
        summaries = summarize_many(session, found.items, facts)
        title = t(who.lang, "my_header", total=found.total)
        return _page_card(who.lang, title, summaries, found, MY)

    return work


def _overdue_view(
    services: Services, who: Who, page: int, *, text: str = "", org_id: int | None = None
) -> Callable[[Session], Card]:
    def work(session: Session) -> Card:
        paths = reader_scope(who.actor)
        if org_id is not None:
            # A page button's org, re-checked against the presser's scope.
            org = org_in_scope(session, org_id, paths)
            if org is None:
                raise InputRefused("unknown_org", {"value": org_id})
            scope = Scope((org.path,), org, ())
        else:
            scope = _scope(session, paths, text)
        facts = services.facts(session)
        found = overdue_items(session, today=facts.today, scope=scope.paths, page=page)
        if not found.total:
            return Card(t(who.lang, "overdue_none", scope=scope.label(who.lang)))
        summaries = summarize_many(session, found.items, facts)
        title = t(who.lang, "overdue_header", scope=scope.label(who.lang), total=found.total)
        return _page_card(who.lang, title, summaries, found, OVERDUE, scope.page_arg())

    return work


def _lists_view(
    services: Services, who: Who, page: int, *, text: str = "", org_id: int | None = None
) -> Callable[[Session], Card]:
    def work(session: Session) -> Card:
        if org_id is not None:
            org = lists_org_by_id(session, who.actor, org_id)
        else:
            org = lists_org(session, who.actor, text)
        facts = services.facts(session)
        found = three_lists(session, org, page=page)
        summaries = summarize_many(session, found.items, facts)
        steps = milestones_of(session, [summary.number for summary in summaries])
        return _lists_card(who.lang, org, found, summaries, steps, facts.today)

    return work


def _details_view(services: Services, who: Who, number: int) -> Callable[[Session], Card]:
    def work(session: Session) -> Card:
        facts = services.facts(session)
        details = item_details(session, who.actor, number, facts)
        return details_card(who.lang, details, today=facts.today, zone=services.settings.zone)

    return work


async def _send_details(update: Update, context: Context, who: Who, number: int) -> None:
    card = await context.services.db(_details_view(context.services, who, number))
    await send(update, context, who, card)


# --- commands ---------------------------------------------------------------------------


def _my_read(session: Session, update: Update, context: Context, who: Who) -> Card:
    return _my_view(context.services, who, 0, single=True)(session)


@reading(_my_read)
async def my(update: Update, context: Context, who: Who, card: Card) -> None:
    """List my open items, most urgent first."""
    await send(update, context, who, card)


def _item_read(session: Session, update: Update, context: Context, who: Who) -> Card | None:
    # None: no number given, answered with the usage line.
    if not context.args:
        return None
    return _details_view(context.services, who, item_number(context.args[0]))(session)


@reading(_item_read)
async def item(update: Update, context: Context, who: Who, card: Card | None) -> None:
    """Show one item: its card, roadmap, evidence, extensions and history."""
    if card is None:
        await reply(update, t(who.lang, "item_usage"))
        return
    await send(update, context, who, card)


def _chat_scope(session: Session, services: Services, chat_id: int) -> tuple[str, ...] | None:
    codes = [chat.org_code for chat in services.settings.BULLETIN_CHATS if chat.chat_id == chat_id]
    if not codes:
        return ()
    return org_scope(session, codes)


def _ledger_read(session: Session, update: Update, context: Context, who: Who) -> str:
    services = context.services
    chat = update.effective_chat
    if is_group(update):
        assert chat is not None
        # A work chat answers for the org it is configured for, whoever asks.
        paths = _chat_scope(session, services, chat.id)
        if paths == ():
            return t(who.lang, "chat_no_scope")
    else:
        paths = reader_scope(who.actor)
    scope = _scope(session, paths, _org_text(context))
    counts = ledger_counts(
        session, scope=scope.paths, facts=services.facts(session), zone=services.settings.zone
    )
    return ledger_text(who.lang, scope, counts)


@reading(_ledger_read, in_groups=True)
async def ledger(update: Update, context: Context, who: Who, text: str) -> None:
    """Count the scope's items by status and light, with the on-time rate."""
    await reply(update, text)


@command()
async def overdue(update: Update, context: Context, who: Who) -> None:
    """List the scope's overdue items, most overdue first."""
    services = context.services
    card = await services.db(_overdue_view(services, who, 0, text=_org_text(context)))
    await send(update, context, who, card)


@command()
async def lists(update: Update, context: Context, who: Who) -> None:
    """Show the disclosed three lists of my org, or of an org in my scope."""
    services = context.services
    card = await services.db(_lists_view(services, who, 0, text=_org_text(context)))
    await send(update, context, who, card)


@command()
async def export(update: Update, context: Context, who: Who) -> None:
    """Send the scope's ledger as an .xlsx workbook."""
    services = context.services
    settings = services.settings
    text = _org_text(context)

    def work(session: Session) -> tuple[bytes, int, str, str, date]:
        scope = _scope(session, reader_scope(who.actor), text)
        facts = services.facts(session)
        rows = export_rows(
            session,
            today=facts.today,
            calendar=facts.calendar,
            warn_days=facts.warn_days,
            zone=settings.zone,
            scope_paths=scope.paths,
            org_code=scope.org.code if scope.org is not None else None,
        )
        stream = io.BytesIO()
        count = write_xlsx(rows, stream)
        return stream.getvalue(), count, scope.label(who.lang), scope.file_tag(), facts.today

    data, count, label, tag, today = await services.db(work)
    message = update.effective_message
    assert message is not None
    await message.reply_document(
        document=data,
        filename=f"ledger-{tag}-{today.isoformat()}.xlsx",
        caption=t(who.lang, "export_caption", scope=label, count=count, day=today.isoformat()),
        do_quote=False,
    )


# --- buttons ------------------------------------------------------------------------------


def _view_arg(arg: str) -> tuple[str, int | None]:
    view, _, org = arg.partition(".")
    if org and not org.isdigit():
        raise InputRefused("unknown_org", {"value": org})
    return view, int(org) if org else None


@button()
async def turn_page(update: Update, context: Context, who: Who, press: callbacks.Press) -> None:
    """Show another page of a list, read again for whoever pressed."""
    query = update.callback_query
    assert query is not None
    services = context.services
    view, org_id = _view_arg(press.arg)
    if view == MY:
        card = await services.db(_my_view(services, who, press.number, single=False))
    elif view == OVERDUE:
        card = await services.db(_overdue_view(services, who, press.number, org_id=org_id))
    elif view == LISTS:
        card = await services.db(_lists_view(services, who, press.number, org_id=org_id))
    else:
        await query.answer(t(who.lang, "button_invalid"), show_alert=True)
        return
    try:
        await query.edit_message_text(card.text, reply_markup=markup(card))
    except BadRequest as error:
        # The page the message already shows (its "2/3" button): nothing to change.
        if "not modified" not in str(error).lower():
            raise
    await query.answer()


@button()
async def show_details(update: Update, context: Context, who: Who, press: callbacks.Press) -> None:
    """Show an item's details under the message whose button was pressed."""
    query = update.callback_query
    assert query is not None
    await _send_details(update, context, who, press.number)
    await query.answer()


def handlers() -> list[Handler]:
    """The read-side commands and their buttons (pages, details)."""
    return [
        CommandHandler("my", my),
        CommandHandler("item", item),
        CommandHandler("ledger", ledger),
        CommandHandler("overdue", overdue),
        CommandHandler("lists", lists),
        CommandHandler("export", export),
        CallbackQueryHandler(turn_page, pattern=r"^pg:"),
        CallbackQueryHandler(show_details, pattern=r"^itm:"),
    ]


__all__ = ["details_card", "handlers", "ledger_text"]
