"""SPEC §7: every item card the bot sends is remembered, so replies attach and edits find it."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from models import clock
from models.cards import SentCard, card_item, remember_cards
from models.db import transaction
from models.ledger import NewItem, create_item
from models.people import actor_for
from models.tables import Card
from tests.support import District

CHAT = 7001
MESSAGE = 42


def _two_items(engine: Engine, district: District) -> tuple[int, int]:
    with transaction(engine) as session:
        inspector = actor_for(session, district.members["M003"])
        numbers = []
        for title in ("台账不全", "会议记录缺失"):
            item = create_item(
                session,
                inspector,
                NewItem(
                    kind="problem",
                    org_id=district.orgs["C01"],
                    title=title,
                    due_date=date(2026, 3, 20),
                ),
                today=date(2026, 3, 2),
            )
            assert item.number is not None
            numbers.append(item.number)
        return numbers[0], numbers[1]


def _remember(engine: Engine, item: int, member: int | None, version: int) -> None:
    with transaction(engine) as session:
        remember_cards(session, [SentCard(CHAT, MESSAGE, item, member, version)])


def test_a_sent_card_is_remembered_with_its_item_reader_version_and_time(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    first, _ = _two_items(engine, district)
    reader = district.members["M003"]
    _remember(engine, first, reader, 2)
    with Session(engine) as session:
        row = session.get(Card, (CHAT, MESSAGE))
        assert row is not None
        assert (row.item_number, row.member_id, row.version) == (first, reader, 2)
        assert row.sent_at.replace(tzinfo=None) == clock.now().replace(tzinfo=None)
        assert card_item(session, CHAT, MESSAGE) == first


def test_a_card_remembered_again_shows_the_new_item_and_version_and_keeps_reader_and_time(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    first, second = _two_items(engine, district)
    reader = district.members["M003"]
    _remember(engine, first, reader, 1)
    sent = clock.now()
    frozen_clock.advance(timedelta(minutes=5))
    _remember(engine, second, None, 3)
    with Session(engine) as session:
        row = session.get(Card, (CHAT, MESSAGE))
        assert row is not None
        assert (row.item_number, row.member_id, row.version) == (second, reader, 3)
        assert row.sent_at.replace(tzinfo=None) == sent.replace(tzinfo=None)


def test_cards_remembered_together_are_each_stored_and_a_message_twice_keeps_the_later(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    first, second = _two_items(engine, district)
    reader = district.members["M003"]
    with transaction(engine) as session:
        remember_cards(
            session,
            [
                SentCard(CHAT, MESSAGE, first, reader, 1),
                SentCard(CHAT, MESSAGE + 1, second, reader, 1),
                SentCard(CHAT, MESSAGE, first, reader, 2),
            ],
        )
    with Session(engine) as session:
        assert card_item(session, CHAT, MESSAGE + 1) == second
        row = session.get(Card, (CHAT, MESSAGE))
        assert row is not None and (row.item_number, row.version) == (first, 2)
