"""SPEC §4's read side end to end: /my, /item, /ledger, /overdue, /lists, /export,
page buttons and details buttons, each within the reader's scope."""

from __future__ import annotations

import asyncio
import io
from datetime import date

import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]
from sqlalchemy import Engine, event
from sqlmodel import Session

from bot import callbacks
from bot.services import BotApplication
from models.clock import FrozenClock
from models.db import transaction
from models.ledger import NewItem, act, add_milestone, create_item
from models.people import actor_for
from models.tables import Card, Item, Member
from sandbox.botapi import BotApiServer, SandboxClient
from sandbox.botapi.records import MessageRecord
from settings import Settings, load_settings
from tests.bot.support import People

TODAY = date(2026, 3, 2)
#: How often, and how long apart, a test looks for a card row the bot writes after sending.
RECORD_POLLS = 50
RECORD_POLL_INTERVAL = 0.05  # seconds
#: A work chat configured for the general branch G01 (B01 and B02 below it).
G01_CHAT = -100_201
#: A work chat configured without an org: the whole tree.
DISTRICT_CHAT = -100_202
#: A group the bot is in but that nobody configured.
UNCONFIGURED_CHAT = -100_203


@pytest.fixture
def bot_settings(database_url: str, botapi: BotApiServer) -> Settings:
    """The conftest's settings, plus two work chats with a scope."""
    return load_settings(
        DATABASE_URL=database_url,
        BOT_TOKEN=botapi.token,
        TELEGRAM_API_URL=botapi.base_url,
        TELEGRAM_FILE_URL=botapi.file_url,
        QUIET_HOURS="",
        BULLETIN_CHATS=f"weekly:{G01_CHAT}:G01,daily:{DISTRICT_CHAT}",
    )


def _new(
    engine: Engine,
    people: People,
    org: str,
    due: date | None,
    title: str = "三会一课记录不全",
    *,
    by: str | None = "M003",
    kind: str = "problem",
    status: str = "open",
) -> int:
    """An item logged by `by` (None: imported, so a past due date is allowed)."""
    district = people.district
    with transaction(engine) as session:
        actor = actor_for(session, district.members[by]) if by else None
        item = create_item(
            session,
            actor,
            NewItem(kind=kind, org_id=district.orgs[org], title=title, due_date=due),
            today=TODAY,
            status=status,
        )
        assert item.number is not None
        return item.number


def _do(engine: Engine, people: People, who: str, number: int, action: str) -> None:
    with transaction(engine) as session:
        reason = "整改不到位" if action in ("reject", "cancel") else None
        act(
            session, actor_for(session, people.district.members[who]), number, action, reason=reason
        )


def _bind(engine: Engine, people: People, code: str) -> None:
    with transaction(engine) as session:
        member = session.get(Member, people.district.members[code])
        assert member is not None
        member.telegram_user_id = member.chat_id = people[code].id
        session.add(member)


async def _ask(client: SandboxClient, people: People, code: str, text: str) -> MessageRecord:
    user = people[code]
    sent = client.send_text(user, text)
    return await client.wait_for(user.id, after=sent)


async def _recorded(engine: Engine, message: MessageRecord) -> Card:
    """The card row of a message the bot sent; it is written just after the send."""
    for _ in range(RECORD_POLLS):
        with Session(engine) as session:
            row = session.get(Card, (message.chat.id, message.message_id))
        if row is not None:
            return row
        await asyncio.sleep(RECORD_POLL_INTERVAL)
    raise AssertionError(f"message {message.message_id} was not recorded as an item card")


def _version(engine: Engine, number: int) -> int:
    with Session(engine) as session:
        item = session.get(Item, number)
        assert item is not None
        return item.version


async def test_an_inspectors_my_shows_a_submitted_item_of_their_scope(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: FrozenClock,
) -> None:
    submitted = _new(engine, people, "B01", date(2026, 3, 20), "党费收缴不规范")
    _do(engine, people, "M005", submitted, "submit")
    other = _new(engine, people, "B04", date(2026, 3, 20), "台账不全", by="M013")
    _do(engine, people, "M011", other, "submit")
    reply = await _ask(client, people, "M003", "/my")
    assert f"#{submitted}" in reply.text and "党费收缴不规范" in reply.text
    assert "待验收" in reply.text and f"#{other}" not in reply.text
    # One item: its full card, with the button the inspector may press.
    version = _version(engine, submitted)
    assert callbacks.encode("verify", submitted, version) in reply.buttons
    assert (await _recorded(engine, reply)).item_number == submitted


async def test_a_secretarys_my_lists_their_items_most_urgent_first(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: FrozenClock,
) -> None:
    later = _new(engine, people, "B01", date(2026, 3, 27), "组织生活会未开")
    undated = _new(engine, people, "B01", None, "制度未上墙")
    overdue = _new(engine, people, "B01", date(2026, 2, 20), "档案缺失", by=None)
    soon = _new(engine, people, "B01", date(2026, 3, 4), "谈心谈话记录不全")
    _new(engine, people, "B02", date(2026, 3, 3), "别的支部的问题")
    reply = await _ask(client, people, "M005", "/my")
    positions = [reply.text.index(f"#{number} ") for number in (overdue, soon, later, undated)]
    assert positions == sorted(positions)
    assert "🔴" in reply.text and "别的支部的问题" not in reply.text


async def test_item_shows_light_status_due_and_only_the_buttons_the_reader_may_press(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: FrozenClock,
) -> None:
    number = _new(engine, people, "B01", date(2026, 3, 20), "三会一课记录不全")
    with transaction(engine) as session:
        add_milestone(
            session,
            actor_for(session, people.district.members["M005"]),
            number,
            "补齐会议记录",
            date(2026, 3, 9),
        )
    version = _version(engine, number)
    card = await _ask(client, people, "M005", f"/item {number}")
    assert f"#{number} 🟢" in card.text
    assert "整改中" in card.text and "截止 2026-03-20" in card.text
    assert "补齐会议记录" in card.text and "处理记录" in card.text and "张督查" in card.text
    assert callbacks.encode("submit", number, version) in card.buttons
    assert callbacks.encode("verify", number, version) not in card.buttons
    inspector = await _ask(client, people, "M003", f"/item #{number}")
    assert callbacks.encode("submit", number, version) not in inspector.buttons
    assert callbacks.encode("verify", number, version) not in inspector.buttons
    row = await _recorded(engine, card)
    assert row.item_number == number and row.version == version


async def test_another_branch_asking_for_b01s_item_gets_the_same_answer_as_for_a_missing_one(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: FrozenClock,
) -> None:
    number = _new(engine, people, "B01", date(2026, 3, 20), "三会一课记录不全")
    hidden = await _ask(client, people, "M007", f"/item {number}")
    missing = await _ask(client, people, "M007", "/item 9999")
    assert "三会一课" not in hidden.text and not hidden.buttons
    assert hidden.text.replace(str(number), "N") == missing.text.replace("9999", "N")


async def test_the_details_button_shows_the_same_details(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: FrozenClock,
) -> None:
    number = _new(engine, people, "B01", date(2026, 3, 20), "三会一课记录不全")
    card = await _ask(client, people, "M005", "/my")
    details = callbacks.encode("details", number, _version(engine, number))
    assert details in card.buttons
    query = client.press(people["M005"], card, details)
    shown = await client.wait_for(people["M005"].id, "处理记录", after=card)
    await client.wait_for_answer(query)
    assert f"#{number}" in shown.text and "登记" in shown.text
    assert (await _recorded(engine, shown)).item_number == number
    # A forged details press for another branch's item shows nothing of it.
    other = _new(engine, people, "B02", date(2026, 3, 20), "别的支部的问题")
    forged = client.press(people["M005"], card, callbacks.encode("details", other, 1), forged=True)
    answered = await client.wait_for_answer(forged)
    assert answered.show_alert and f"#{other}" in (answered.answer_text or "")
    assert all("别的支部的问题" not in (m.text or "") for m in client.messages(people["M005"].id))


async def test_ledger_counts_statuses_lights_and_the_on_time_rate_for_a_scope(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: FrozenClock,
) -> None:
    _new(engine, people, "B01", date(2026, 3, 31))  # open, green
    _new(engine, people, "B01", date(2026, 2, 20), by=None)  # open, red
    started = _new(engine, people, "B01", date(2026, 3, 4))  # in progress, yellow
    _do(engine, people, "M005", started, "acknowledge")
    closed = _new(engine, people, "B01", date(2026, 3, 20))
    _do(engine, people, "M005", closed, "submit")
    _do(engine, people, "M003", closed, "verify")
    _new(engine, people, "B03", date(2026, 2, 20), by=None)  # outside B01
    reply = await _ask(client, people, "M005", "/ledger")
    text = reply.text
    assert "镇机关第一党支部" in text
    assert "共 4 项" in text and "待整改 2" in text and "整改中 1" in text and "已销号 1" in text
    assert "红灯 1" in text and "黄灯 1" in text and "绿灯 1" in text
    assert "逾期 1 项" in text and "100%" in text
    leader = await _ask(client, people, "M002", "/ledger B03")
    assert "东关社区党支部" in leader.text and "共 1 项" in leader.text
    outside = await _ask(client, people, "M005", "/ledger B03")
    assert "找不到组织" in outside.text


async def test_a_read_command_is_looked_up_and_read_in_one_transaction(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: FrozenClock,
) -> None:
    _new(engine, people, "B01", date(2026, 3, 20))
    commits: list[object] = []

    def count(connection: object) -> None:
        commits.append(connection)

    event.listen(engine, "commit", count)
    try:
        reply = await _ask(client, people, "M005", "/ledger")
        await asyncio.sleep(RECORD_POLL_INTERVAL)  # a second transaction would be done by now
    finally:
        event.remove(engine, "commit", count)
    assert "共 1 项" in reply.text
    assert len(commits) == 1


async def test_ledger_in_a_configured_group_chat_answers_for_its_org(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: FrozenClock,
) -> None:
    _new(engine, people, "B01", date(2026, 3, 20))
    _new(engine, people, "B02", date(2026, 2, 20), by=None)
    _new(engine, people, "B03", date(2026, 3, 20))
    for chat_id in (G01_CHAT, DISTRICT_CHAT, UNCONFIGURED_CHAT):
        client.group(chat_id, "工作群", [people["M005"], people["M003"]])
    sent = client.send_text(people["M005"], "/ledger", chat=G01_CHAT)
    reply = await client.wait_for(G01_CHAT, after=sent)
    assert "镇机关党总支" in reply.text and "共 2 项" in reply.text and "逾期 1 项" in reply.text
    sent = client.send_text(people["M003"], "/ledger", chat=DISTRICT_CHAT)
    reply = await client.wait_for(DISTRICT_CHAT, after=sent)
    assert "全部组织" in reply.text and "共 3 项" in reply.text
    sent = client.send_text(people["M005"], "/ledger", chat=UNCONFIGURED_CHAT)
    reply = await client.wait_for(UNCONFIGURED_CHAT, after=sent)
    assert "未配置" in reply.text and "#" not in reply.text


async def test_my_in_a_group_answers_with_a_continue_in_private_button_only(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: FrozenClock,
) -> None:
    number = _new(engine, people, "B01", date(2026, 3, 20), "三会一课记录不全")
    client.group(G01_CHAT, "工作群", [people["M005"]])
    sent = client.send_text(people["M005"], "/my", chat=G01_CHAT)
    reply = await client.wait_for(G01_CHAT, after=sent)
    assert "私聊" in reply.text and f"#{number}" not in reply.text
    assert "三会一课" not in reply.text and not reply.buttons
    keyboard = reply.reply_markup or {}
    urls = [button.get("url", "") for row in keyboard["inline_keyboard"] for button in row]
    assert len(urls) == 1 and urls[0].startswith("https://t.me/")


async def test_overdue_lists_the_scopes_overdue_items_most_overdue_first(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: FrozenClock,
) -> None:
    recent = _new(engine, people, "B01", date(2026, 2, 27), by=None)
    oldest = _new(engine, people, "B01", date(2026, 2, 10), by=None)
    middle = _new(engine, people, "B02", date(2026, 2, 16), by=None)
    _new(engine, people, "B01", date(2026, 3, 20))
    elsewhere = _new(engine, people, "B04", date(2026, 2, 1), by=None)
    reply = await _ask(client, people, "M002", "/overdue")
    positions = [reply.text.index(f"#{number} ") for number in (oldest, middle, recent)]
    assert positions == sorted(positions)
    assert f"#{elsewhere} " not in reply.text
    narrowed = await _ask(client, people, "M002", "/overdue B02")
    assert f"#{middle} " in narrowed.text and f"#{oldest} " not in narrowed.text
    member = await _ask(client, people, "M005", "/overdue")
    assert f"#{middle} " not in member.text and f"#{oldest} " in member.text


async def test_pages_turn_and_a_forged_page_press_shows_only_the_pressers_own_items(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: FrozenClock,
) -> None:
    numbers = [_new(engine, people, "B01", date(2026, 3, 20), f"问题{i}") for i in range(25)]
    theirs = [_new(engine, people, "B02", date(2026, 3, 20), f"二支部问题{i}") for i in range(2)]
    first = await _ask(client, people, "M005", "/my")
    assert f"#{numbers[0]} " in first.text and f"#{numbers[10]} " not in first.text
    next_page = callbacks.encode("page", 1, 0, "my")
    assert next_page in first.buttons
    query = client.press(people["M005"], first, next_page)
    await client.wait_for_answer(query)
    assert f"#{numbers[10]} " in first.text and f"#{numbers[0]} " not in first.text
    assert "2/3" in first.button_texts

    # M007 (branch B02) forges presses on a message of their own chat.
    mine = await _ask(client, people, "M007", "/my")
    for data in ("pg:1:0:my", "pg:0:0:my"):
        forged = client.press(people["M007"], mine, data, forged=True)
        await client.wait_for_answer(forged)
        assert f"#{theirs[0]} " in mine.text
        assert all(f"#{number} " not in mine.text for number in numbers)
    b01 = people.district.orgs["B01"]
    forged = client.press(people["M007"], mine, f"pg:0:0:overdue.{b01}", forged=True)
    answered = await client.wait_for_answer(forged)
    assert answered.show_alert
    assert all(f"#{number} " not in mine.text for number in numbers)
    forged = client.press(people["M007"], mine, f"pg:0:0:lists.{b01}", forged=True)
    assert (await client.wait_for_answer(forged)).show_alert


async def test_lists_show_a_commitment_with_its_roadmap_to_a_plain_member_but_not_a_problem(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: FrozenClock,
) -> None:
    _bind(engine, people, "M006")
    commitment = _new(
        engine, people, "B01", date(2026, 6, 30), "每月开展志愿服务", by="M005", kind="commitment"
    )
    with transaction(engine) as session:
        add_milestone(
            session,
            actor_for(session, people.district.members["M005"]),
            commitment,
            "制定服务计划",
            date(2026, 3, 15),
        )
    problem = _new(engine, people, "B01", date(2026, 3, 20), "党费收缴不规范")
    _new(engine, people, "B02", date(2026, 6, 30), "二支部的承诺", by="M007", kind="commitment")
    reply = await _ask(client, people, "M006", "/lists")
    assert "承诺清单" in reply.text and f"#{commitment}" in reply.text
    assert "每月开展志愿服务" in reply.text and "制定服务计划" in reply.text
    assert "2026-03-15" in reply.text and "刘支书" in reply.text and "整改中" in reply.text
    assert f"#{problem}" not in reply.text and "党费收缴" not in reply.text
    assert "二支部的承诺" not in reply.text
    other = await _ask(client, people, "M006", "/lists B02")
    assert "二支部的承诺" not in other.text and "找不到组织" in other.text


async def test_export_sends_an_xlsx_whose_rows_are_only_the_scopes(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: FrozenClock,
) -> None:
    _bind(engine, people, "M006")
    ours = [_new(engine, people, "B01", date(2026, 3, 20), f"问题{i}") for i in range(3)]
    _new(engine, people, "B02", date(2026, 3, 20), "二支部的问题")
    _new(engine, people, "B04", date(2026, 3, 20), "开发区的问题", by="M013")
    reply = await _ask(client, people, "M005", "/export")
    assert reply.document is not None
    assert reply.document.file_name == "ledger-B01-2026-03-02.xlsx"
    data = client.download(reply.document.file_id)
    sheet = load_workbook(io.BytesIO(data), read_only=True).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("number", "kind", "org_code")
    assert sorted(row[0] for row in rows[1:]) == ours
    assert {row[2] for row in rows[1:]} == {"B01"}
    refused = await _ask(client, people, "M006", "/export")
    assert refused.document is None and "角色" in refused.text


async def test_a_plain_member_has_no_ledger(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: FrozenClock,
) -> None:
    _bind(engine, people, "M006")
    _new(engine, people, "B01", date(2026, 2, 20), "档案缺失", by=None)
    for command in ("/ledger", "/overdue"):
        reply = await _ask(client, people, "M006", command)
        assert "角色" in reply.text and "档案缺失" not in reply.text
