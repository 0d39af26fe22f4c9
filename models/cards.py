"""The messages that show an item: remembered as they are sent, found by a reply.

The bot records each item card it sends or edits, and so does a delivery job
for the cards it pushes (SPEC §7): a reply to one attaches to its item, and a
change edits it in place where the reader still has it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sqlalchemy import Executable
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from models import clock
from models.tables import Card


@dataclass(frozen=True)
class SentCard:
    """A message in `chat_id` that shows item `item_number` at `version` to `member_id`."""

    chat_id: int
    message_id: int
    item_number: int
    member_id: int | None
    version: int


_KEY = ["chat_id", "message_id"]
_PG = postgresql.insert(Card)
_SQLITE = sqlite.insert(Card)
#: The insert-or-update by dialect name, built once: building it cost more than
#: running it. A message recorded before keeps its reader and first sending time.
_REMEMBER: dict[str, Executable] = {
    "postgresql": _PG.on_conflict_do_update(
        index_elements=_KEY,
        set_={"item_number": _PG.excluded.item_number, "version": _PG.excluded.version},
    ),
    "sqlite": _SQLITE.on_conflict_do_update(
        index_elements=_KEY,
        set_={"item_number": _SQLITE.excluded.item_number, "version": _SQLITE.excluded.version},
    ),
}


def remember_cards(session: Session, cards: Sequence[SentCard]) -> None:
    """Record each card, in order: a message recorded again (an edited card) now
    shows the later item and version, and keeps its reader and first sending time.

    One insert-or-update statement for all of them, on the connection, not a
    read then an ORM write: it runs for every card the bot sends.
    """
    if not cards:
        return
    now = clock.now()
    session.connection().execute(
        _REMEMBER[session.get_bind().dialect.name],
        [{**asdict(card), "sent_at": now} for card in cards],
    )


def card_item(session: Session, chat_id: int, message_id: int) -> int | None:
    """The item a bot message in `chat_id` shows, if it was an item card."""
    row = session.get(Card, (chat_id, message_id))
    return row.item_number if row else None
