"""Sending what the cards module renders, and remembering item cards.

Every item card the bot shows (cards.item_card: `Card.shows` is set) is
recorded (chat, message id, item, version; models/cards.py), so a reply to it
attaches to that item and a later change can edit it in place (SPEC §7).
Other messages — an acknowledgement, a question, a list — are not recorded:
an in-place edit would turn them into cards.
"""

from __future__ import annotations

import contextlib

from sqlmodel import Session
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest

from bot.cards import Card, item_card
from bot.guard import Who
from bot.services import Context, Services
from models.cards import SentCard
from models.summaries import Facts, summarize
from models.tables import Item


def markup(card: Card) -> InlineKeyboardMarkup | None:
    """python-telegram-bot markup for the card's buttons."""
    if not card.buttons:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(label, callback_data=data) for label, data in row]
            for row in card.buttons
        ]
    )


def card_for(
    session: Session, facts: Facts, who: Who, item: Item, intro: str | None = None
) -> Card:
    """Item's card as `who` sees it now: summarized for them, in their language."""
    return item_card(who.lang, summarize(session, item, facts, reader=who.actor), intro=intro)


async def send(update: Update, context: Context, who: Who, card: Card) -> None:
    """Answer in the update's chat with `card`; an item card is recorded for replies and edits."""
    message = update.effective_message
    if message is None:
        return
    sent = await message.reply_text(card.text, reply_markup=markup(card), do_quote=False)
    await record_sent(context.services, sent, card, member_id=who.member_id)


async def drop_buttons(update: Update) -> None:
    """Take the buttons off the pressed message (its question is answered), if it still has them."""
    query = update.callback_query
    if query is None:
        return
    with contextlib.suppress(BadRequest):
        await query.edit_message_reply_markup(reply_markup=None)


async def record_sent(
    services: Services, message: Message, card: Card, *, member_id: int | None
) -> None:
    """Remember a message the bot just sent (or edited) showing `card`, if it is an item card."""
    if card.shows is None:
        return
    number, version = card.shows
    await services.cards.add(
        SentCard(
            chat_id=message.chat_id,
            message_id=message.message_id,
            item_number=number,
            member_id=member_id,
            version=version,
        )
    )
