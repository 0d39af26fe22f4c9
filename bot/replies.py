"""Sending what the cards module renders, and remembering item cards.

Every message about an item is recorded (chat, message id, item), so a reply
to it attaches to that item and a later change can edit it in place (SPEC §7).
"""

from __future__ import annotations

from sqlmodel import Session
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.cards import Card
from bot.services import Services
from models import clock
from models.tables import Card as CardRow


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


def remember_card(
    session: Session,
    *,
    chat_id: int,
    message_id: int,
    item_number: int,
    member_id: int | None,
    version: int,
) -> None:
    """Record that `message_id` in `chat_id` shows item `item_number` at `version`."""
    row = session.get(CardRow, (chat_id, message_id))
    if row is None:
        row = CardRow(
            chat_id=chat_id,
            message_id=message_id,
            item_number=item_number,
            member_id=member_id,
            version=version,
            sent_at=clock.now(),
        )
    row.item_number, row.version = item_number, version
    session.add(row)


async def record_sent(
    services: Services, message: Message, *, item_number: int, member_id: int | None, version: int
) -> None:
    """Remember a message the bot just sent (or edited) about an item."""
    await services.db(
        lambda session: remember_card(
            session,
            chat_id=message.chat_id,
            message_id=message.message_id,
            item_number=item_number,
            member_id=member_id,
            version=version,
        )
    )


def card_item(session: Session, chat_id: int, message_id: int) -> int | None:
    """The item a bot message in `chat_id` is about, if it was an item card."""
    row = session.get(CardRow, (chat_id, message_id))
    return row.item_number if row else None
