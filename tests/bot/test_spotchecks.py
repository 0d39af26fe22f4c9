"""`/spotcheck` and `/lookback` end to end (SPEC §4, §5): the real Application
polling the local Bot API server, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.services import BotApplication
from models import clock
from models.clock import FrozenClock
from models.db import transaction
from models.ledger import NewItem, act, create_item
from models.people import actor_for
from models.tables import Card, Item, SpotCheck
from sandbox.botapi import SandboxClient
from sandbox.botapi.records import MessageRecord
from tests.bot.support import People

#: How often, and how long apart, a test looks for a card row the bot writes after sending.
RECORD_POLLS = 50
RECORD_POLL_INTERVAL = 0.05  # seconds


@pytest.fixture
def march(engine: Engine, people: People, frozen_clock: FrozenClock) -> int:
    """March's checks: B02 for GRP1, B04 for GRP2, and a look-back of a B01 item
    closed in January for GRP1. Returns the looked-back item's number."""
    district = people.district
    frozen_clock.current = datetime(2026, 1, 12, 1, 0, tzinfo=UTC)
    with transaction(engine) as session:
        item = create_item(
            session,
            None,
            NewItem(
                kind="problem",
                org_id=district.orgs["B01"],
                title="制度未上墙",
                due_date=date(2026, 1, 30),
            ),
        )
        number = item.number
        assert number is not None
        act(session, actor_for(session, district.members["M005"]), number, "submit")
    with transaction(engine) as session:
        act(session, actor_for(session, district.members["M003"]), number, "verify")
    frozen_clock.current = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    now = clock.now()
    with transaction(engine) as session:
        session.add_all(
            [
                SpotCheck(
                    kind="comprehensive",
                    period="2026-03",
                    org_id=district.orgs["B02"],
                    group_id=district.groups["GRP1"],
                    assigned_at=now,
                ),
                SpotCheck(
                    kind="comprehensive",
                    period="2026-03",
                    org_id=district.orgs["B04"],
                    group_id=district.groups["GRP2"],
                    assigned_at=now,
                ),
                SpotCheck(
                    kind="lookback",
                    period="2026-03",
                    org_id=district.orgs["B01"],
                    group_id=district.groups["GRP1"],
                    item_number=number,
                    assigned_at=now,
                ),
            ]
        )
    return number


async def _ask(
    client: SandboxClient, people: People, code: str, text: str, wanted: str | None = None
) -> MessageRecord:
    user = people[code]
    sent = client.send_text(user, text)
    return await client.wait_for(user.id, wanted, after=sent)


async def _recorded(engine: Engine, message: MessageRecord) -> Card:
    """The card row of a message the bot sent; it is written just after the send."""
    for _ in range(RECORD_POLLS):
        with Session(engine) as session:
            row = session.get(Card, (message.chat.id, message.message_id))
        if row is not None:
            return row
        await asyncio.sleep(RECORD_POLL_INTERVAL)
    raise AssertionError(f"message {message.message_id} was not recorded as an item card")


async def test_spotcheck_lists_the_groups_units_and_look_backs_with_their_cards(
    app: BotApplication, client: SandboxClient, people: People, engine: Engine, march: int
) -> None:
    listing = await _ask(client, people, "M003", "/spotcheck", "抽查任务")
    text = listing.text or ""
    assert "本月（2026-03）抽查任务" in text and "镇机关第二党支部（B02）— 第一督查组" in text
    assert f"#{march} 制度未上墙（镇机关第一党支部，2026-01-12 销号）" in text
    assert "经开区企业党支部" not in text  # GRP2's check
    card = await client.wait_for(people["M003"].id, f"#{march} ", after=listing)
    assert "已销号" in (card.text or "")
    assert (await _recorded(engine, card)).item_number == march


async def test_spotcheck_is_for_inspectors_and_never_shows_a_member_their_own_unit(
    app: BotApplication, client: SandboxClient, people: People, march: int
) -> None:
    secretary = await _ask(client, people, "M005", "/spotcheck")
    assert secretary.text == "此命令仅供督查组成员使用。"
    # M011 sits in GRP2 but is B04's secretary: B04's check is not theirs to see.
    own = await _ask(client, people, "M011", "/spotcheck")
    assert "没有抽查任务" in (own.text or "") and "B04" not in (own.text or "")
    other = await _ask(client, people, "M013", "/spotcheck")
    assert "经开区企业党支部（B04）" in (other.text or "")


async def test_a_failed_lookback_from_chat_reopens_the_item(
    app: BotApplication, client: SandboxClient, people: People, engine: Engine, march: int
) -> None:
    usage = await _ask(client, people, "M004", f"/lookback {march} maybe")
    assert usage.text == "Usage: /lookback N pass, or /lookback N fail WHAT YOU FOUND"
    empty = await _ask(client, people, "M004", f"/lookback {march} fail")
    assert empty.text == "Say what you found: /lookback N fail WHAT YOU FOUND"
    elsewhere = await _ask(client, people, "M013", f"/lookback {march} pass")
    assert "No look-back" in (elsewhere.text or "") or "没有分配" in (elsewhere.text or "")
    done = await _ask(client, people, "M004", f"/lookback #{march} fail 制度又未上墙", "look-back")
    assert f"#{march} failed its look-back" in (done.text or "")
    assert "in progress" in (done.text or "")
    with Session(engine) as session:
        item = session.get(Item, march)
        check = session.exec(select(SpotCheck).where(SpotCheck.item_number == march)).one()
    assert item is not None and (item.status, item.relapses) == ("in_progress", 1)
    assert check.passed is False and check.note == "制度又未上墙"
    again = await _ask(client, people, "M003", f"/lookback {march} pass")
    assert again.text == f"#{march} 的回头看结果已经记录。"
    listing = await _ask(client, people, "M003", "/spotcheck", "抽查任务")
    assert "（已复查：未通过）" in (listing.text or "")
