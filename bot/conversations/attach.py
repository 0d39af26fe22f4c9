"""Attaching at once: the window after a creation, and replies to an item's messages.

A creation (one-shot or guided) opens the ``attach`` flow: photos, locations,
files, voice, video and text sent in the next minutes (models.drafts.FLOW_TTL)
go to the new item at once, each acknowledged "#N：已附上". With no flow
open, a reply attaches to the item the replied-to message is about: an item
card (recorded in the card table, bot/replies.py) or one of our
acknowledgements, which start "#N：" and are deliberately not recorded —
delivery edits recorded cards in place (SPEC §7), and an acknowledgement must
stay what it said. Replying to "#3：已附上" to add one more photo is what
people do, so that keeps working by reading the number off the message.
"""

from __future__ import annotations

import re

from sqlmodel import Session
from telegram import Message, Update

from bot.cards import Card
from bot.conversations.evidence import (
    Entry,
    already_attached,
    archive,
    checked_entry,
    evidence_count,
)
from bot.conversations.flows import ATTACH, Flow, locked_draft
from bot.guard import Who
from bot.replies import card_for, send
from bot.services import Context
from models.cards import card_item
from models.drafts import clear_draft, start_draft, update_draft
from models.ledger import attach_evidence, get_item, view_of
from models.permissions import Actor, check
from models.states import Action, next_status
from models.summaries import Facts
from models.tables import Item
from models.texts import kind_word, t

#: How our acknowledgements about an item begin (texts "attached", "already_attached",
#: "attach_finished", "submit_got"): "#12：…" in Chinese, "#12: …" in English.
_ACKNOWLEDGEMENT = re.compile(r"^#(\d{1,9})[：:]")


def open_window(session: Session, facts: Facts, who: Who, item: Item) -> Card:
    """Open the attach window on a new item; its card, saying it was logged and what to send."""
    assert item.number is not None
    start_draft(session, who.member_id, ATTACH, item_number=item.number)
    intro = "\n".join(
        (
            t(who.lang, "created", kind=kind_word(who.lang, item.kind), number=item.number),
            t(who.lang, "attach_hint", number=item.number),
        )
    )
    return card_for(session, facts, who, item, intro)


def replied_item(session: Session, bot_id: int, replied: Message | None) -> int | None:
    """The item a replied-to message is about: an item card of ours, or an acknowledgement."""
    if replied is None:
        return None
    number = card_item(session, replied.chat_id, replied.message_id)
    if number is not None:
        return number
    sender = replied.from_user
    if sender is None or sender.id != bot_id:
        return None  # only the bot's own words name an item
    match = _ACKNOWLEDGEMENT.match(replied.text or "")
    return int(match.group(1)) if match else None


def may_attach(session: Session, actor: Actor, number: int) -> None:
    """Refuse unless the actor may attach evidence to the item now (permission and status)."""
    item = get_item(session, number)
    check(actor, Action.ATTACH, view_of(session, item))
    next_status(item.status, Action.ATTACH)


async def attach_now(
    update: Update, context: Context, who: Who, number: int, entry: Entry, window: bool
) -> None:
    """Attach one piece of evidence to #number at once: "#N: attached".

    `window`: it came in the attach window after a creation, which this
    keeps open a little longer.
    """
    services = context.services
    entry = checked_entry(entry)

    def precheck(session: Session) -> bool:
        may_attach(session, who.actor, number)
        return already_attached(session, number, entry)

    duplicate = await services.db(precheck)
    archived = None if duplicate else await archive(context, entry)

    def work(session: Session) -> int:
        if not duplicate:
            attach_evidence(session, who.actor, number, entry.evidence(archived))
        if window:
            draft = locked_draft(session, who.member_id)
            if draft is not None and draft.flow == ATTACH:
                update_draft(session, draft)
        return evidence_count(session, number)

    count = await services.db(work)
    key = "already_attached" if duplicate else "attached"
    await send(update, context, who, Card(t(who.lang, key, number=number, count=count)))


async def close_window(update: Update, context: Context, who: Who, flow: Flow) -> None:
    """/done in the attach window: close it and say how much the item now holds."""
    number = flow.number
    assert number is not None

    def work(session: Session) -> int:
        clear_draft(session, who.member_id)
        return evidence_count(session, number)

    count = await context.services.db(work)
    await send(
        update, context, who, Card(t(who.lang, "attach_finished", number=number, count=count))
    )
