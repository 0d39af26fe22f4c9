"""SPEC §4 and §7: one step on one item, by command and by button, as people would take it.

/verify, /reject, /plan, /note, /extend, /split, and the acknowledge, verify,
reject and extension buttons: the reply is the item's fresh card, a pressed
card is edited in place, and whatever is refused — a wrong argument, someone
else's item, a forged or stale button — is answered in one sentence and
writes nothing.
"""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from bot.cards import item_card
from bot.replies import markup
from bot.services import BotApplication, Services
from models.db import transaction
from models.drafts import draft_data, get_draft
from models.ledger import NewEvidence, NewItem, act, attach_evidence, create_item, get_item
from models.people import actor_for
from models.summaries import summarize
from models.tables import Card, Draft, Event, Extension, Item, Milestone
from sandbox.botapi import SandboxClient, tiny_png
from sandbox.botapi.records import CallbackQueryRecord, MessageRecord, User
from tests.bot.support import People

TODAY = date(2026, 3, 2)
DUE = date(2026, 3, 20)

pytestmark = pytest.mark.usefixtures("frozen_clock")


# --- helpers ---------------------------------------------------------------------------


def create(
    engine: Engine, people: People, org: str = "B01", by: str = "M003", **fields: object
) -> int:
    """A new problem in `org`, logged by `by` (an inspector), due DUE unless told."""
    district = people.district
    values: dict[str, object] = {
        "kind": "problem",
        "org_id": district.orgs[org],
        "title": "三会一课记录不全",
        "due_date": DUE,
    }
    values.update(fields)
    with transaction(engine) as session:
        actor = actor_for(session, district.members[by])
        item = create_item(session, actor, NewItem(**values), today=TODAY)  # type: ignore[arg-type]
        assert item.number is not None
        return item.number


def do(engine: Engine, people: People, who: str, number: int, action: str) -> None:
    """`who` takes `action` on the item through the ledger, as another part of the bot would."""
    with transaction(engine) as session:
        act(session, actor_for(session, people.district.members[who]), number, action)


def item(engine: Engine, number: int) -> Item:
    with Session(engine) as session:
        return get_item(session, number)


def counts(engine: Engine) -> dict[str, int]:
    """Rows that a change would write: items, events, roadmap steps, extensions, drafts."""
    with Session(engine) as session:
        return {
            table.__name__: session.exec(select(func.count()).select_from(table)).one()
            for table in (Item, Event, Milestone, Extension, Draft)
        }


def events_of(engine: Engine, number: int) -> list[Event]:
    with Session(engine) as session:
        statement = select(Event).where(Event.item_number == number).order_by(col(Event.seq))
        return list(session.exec(statement).all())


async def ask(client: SandboxClient, user: User, text: str) -> MessageRecord:
    """`user` sends `text`; the bot's first answer to it."""
    sent = client.send_text(user, text)
    return await client.wait_for(user.id, after=sent)


async def push_card(
    app: BotApplication,
    client: SandboxClient,
    engine: Engine,
    people: People,
    code: str,
    number: int,
) -> MessageRecord:
    """Item #number's card for `code`, sent as a push would be (delivery is not tested here)."""
    services: Services = app.bot_data
    with transaction(engine) as session:
        reader = actor_for(session, people.district.members[code])
        facts = services.facts(session)
        card = item_card("zh", summarize(session, get_item(session, number), facts, reader=reader))
    user = people[code]
    sent = await app.bot.send_message(user.id, card.text, reply_markup=markup(card))
    return await client.wait_for(user.id, lambda record: record.message_id == sent.message_id)


def button(message: MessageRecord, verb: str) -> str:
    """The callback data of the message's button with this verb."""
    found = [data for data in message.buttons if data.startswith(f"{verb}:")]
    assert found, f"no {verb} button among {message.buttons}"
    return found[0]


async def press(
    client: SandboxClient, user: User, message: MessageRecord, data: str, *, forged: bool = False
) -> CallbackQueryRecord:
    query = client.press(user, message, data, forged=forged)
    return await client.wait_for_answer(query)


async def card_row(engine: Engine, message: MessageRecord, timeout: float = 5.0) -> Card:
    """The record of a card the bot showed; it is written just after the message goes out."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        with Session(engine) as session:
            row = session.get(Card, (message.chat.id, message.message_id))
        if row is not None and row.version == item(engine, row.item_number).version:
            return row
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"message {message.message_id} was not recorded as the fresh card")
        await asyncio.sleep(0.02)


# --- verify -------------------------------------------------------------------------------


async def test_an_inspector_verifies_a_submitted_item_by_command(
    app: BotApplication, client: SandboxClient, people: People, engine: Engine
) -> None:
    number = create(engine, people)
    do(engine, people, "M005", number, "submit")

    reply = await ask(client, people["M003"], f"/verify {number}")

    assert reply.text is not None
    assert "已验收销号" in reply.text and f"#{number}" in reply.text and "已销号" in reply.text
    assert item(engine, number).status == "closed"
    assert (await card_row(engine, reply)).item_number == number


async def test_an_inspector_verifies_by_button_and_the_card_is_edited_in_place(
    app: BotApplication, client: SandboxClient, people: People, engine: Engine
) -> None:
    number = create(engine, people)
    do(engine, people, "M005", number, "submit")
    card = await push_card(app, client, engine, people, "M003", number)
    assert "待验收" in (card.text or "")

    answer = await press(client, people["M003"], card, button(card, "ver"))

    assert answer.answer_text == "已验收销号。" and not answer.show_alert
    edited = await client.wait_for(people["M003"].id, lambda record: bool(record.edits))
    assert edited.message_id == card.message_id
    assert "已销号" in (edited.text or "") and f"#{number}" in (edited.text or "")
    assert not any(data.startswith("ver:") for data in edited.buttons)
    assert len(client.messages(people["M003"].id)) == 1  # edited, not sent anew
    assert item(engine, number).status == "closed"
    assert (await card_row(engine, edited)).item_number == number


async def test_an_item_is_never_verified_by_the_person_who_submitted_it(
    app: BotApplication, client: SandboxClient, people: People, engine: Engine
) -> None:
    # M011 is the secretary of B04 and an inspector of GRP2, which covers B04.
    number = create(engine, people, org="B04", by="M013")
    do(engine, people, "M011", number, "submit")
    before = counts(engine)

    reply = await ask(client, people["M011"], f"/verify {number}")
    card = await push_card(app, client, engine, people, "M011", number)
    version = item(engine, number).version
    answer = await press(client, people["M011"], card, f"ver:{number}:{version}", forged=True)

    assert "不能验收自己提交的整改" in (reply.text or "")
    assert not any(data.startswith("ver:") for data in card.buttons)
    assert answer.show_alert and "不能验收自己提交的整改" in (answer.answer_text or "")
    assert item(engine, number).status == "submitted"
    assert counts(engine) == before


# --- reject -------------------------------------------------------------------------------


async def test_an_inspector_rejects_by_command_with_a_reason(
    app: BotApplication, client: SandboxClient, people: People, engine: Engine
) -> None:
    number = create(engine, people)
    do(engine, people, "M005", number, "submit")

    reply = await ask(client, people["M003"], f"/reject {number} 会议记录照片不清晰，请重新拍摄")

    assert "已退回整改" in (reply.text or "") and "会议记录照片不清晰" in (reply.text or "")
    assert "整改中" in (reply.text or "")
    rejected = item(engine, number)
    assert rejected.status == "in_progress" and rejected.rejections == 1
    assert events_of(engine, number)[-1].reason == "会议记录照片不清晰，请重新拍摄"


async def test_the_reject_button_asks_for_the_reason_as_the_next_message(
    app: BotApplication, client: SandboxClient, people: People, engine: Engine
) -> None:
    # The conversations (bot/conversations/reasons.py) consume "reason" drafts; here we
    # check our half of the contract: the press opens the draft it reads.
    number = create(engine, people)
    do(engine, people, "M005", number, "submit")
    card = await push_card(app, client, engine, people, "M003", number)
    version = item(engine, number).version

    answer = await press(client, people["M003"], card, button(card, "rej"))

    assert "理由" in (answer.answer_text or "") and not answer.show_alert
    prompt = await client.wait_for(people["M003"].id, "理由", after=card)
    assert f"#{number}" in (prompt.text or "")
    with Session(engine) as session:
        draft = get_draft(session, people.district.members["M003"])
        assert draft is not None and draft.flow == "reason" and draft.item_number == number
        assert draft_data(draft) == {"action": "reject", "version": version}
    assert item(engine, number).status == "submitted"  # nothing happens until the reason comes


async def test_the_reject_button_keeps_an_open_submission_and_asks_to_finish_it_first(
    app: BotApplication, client: SandboxClient, people: People, engine: Engine
) -> None:
    # M011, secretary of B04 and an inspector of GRP2 (C02), is gathering evidence for
    # one B04 item when he presses Reject on another: what he gathered must not be lost.
    gathering = create(engine, people, org="B04", by="M013")
    to_reject = create(engine, people, org="B04", by="M013")
    do(engine, people, "M001", to_reject, "submit")
    inspector = people["M011"]
    opened = client.send_text(inspector, f"/submit {gathering}")
    await client.wait_for(inspector.id, "/done", after=opened)
    photo = client.send_photo(inspector, tiny_png(4, 4))
    await client.wait_for(inspector.id, "已收到 1 件", after=photo)
    card = await push_card(app, client, engine, people, "M011", to_reject)

    answer = await press(client, inspector, card, button(card, "rej"))

    said = answer.answer_text or ""
    assert answer.show_alert and f"正在提交 #{gathering}" in said
    assert "/done" in said and "/cancel" in said
    with Session(engine) as session:
        draft = get_draft(session, people.district.members["M011"])
        assert draft is not None and (draft.flow, draft.item_number) == ("submit", gathering)
        assert len(draft_data(draft)["evidence"]) == 1
    assert item(engine, to_reject).status == "submitted"
    assert client.messages(inspector.id)[-1].message_id == card.message_id  # no reason asked


# --- refused presses ------------------------------------------------------------------------


async def test_a_stale_button_is_refused_and_changes_nothing(
    app: BotApplication, client: SandboxClient, people: People, engine: Engine
) -> None:
    number = create(engine, people)
    do(engine, people, "M005", number, "submit")
    card = await push_card(app, client, engine, people, "M003", number)
    with transaction(engine) as session:  # the item changes after the card was drawn
        secretary = actor_for(session, people.district.members["M005"])
        attach_evidence(session, secretary, number, NewEvidence(kind="text", text="补充材料"))
    before = counts(engine)

    answer = await press(client, people["M003"], card, button(card, "ver"))

    assert answer.show_alert and "已过时" in (answer.answer_text or "")
    assert item(engine, number).status == "submitted"
    assert counts(engine) == before
    assert client.messages(people["M003"].id)[-1].edits == []


async def test_a_forged_press_is_refused_and_changes_nothing(
    app: BotApplication, client: SandboxClient, people: People, engine: Engine
) -> None:
    mine = create(engine, people)
    theirs = create(engine, people, org="B04", by="M013")  # GRP2's, not M003's
    do(engine, people, "M005", mine, "submit")
    do(engine, people, "M011", theirs, "submit")
    card = await push_card(app, client, engine, people, "M003", mine)
    version = item(engine, theirs).version
    before = counts(engine)

    other_org = await press(client, people["M003"], card, f"ver:{theirs}:{version}", forged=True)
    garbage = await press(client, people["M003"], card, "ver:#1:x", forged=True)
    unknown_verb = await press(client, people["M003"], card, "zap:1:1", forged=True)

    assert other_org.show_alert and f"没有编号为 #{theirs}" in (other_org.answer_text or "")
    for answer in (garbage, unknown_verb):
        assert answer.show_alert and answer.answer_text == "此按钮无效。"
    assert item(engine, theirs).status == "submitted" and item(engine, mine).status == "submitted"
    assert counts(engine) == before
    assert client.messages(people["M003"].id)[-1].edits == []


async def test_an_unbound_presser_gets_the_polite_refusal(
    app: BotApplication, client: SandboxClient, people: People, engine: Engine
) -> None:
    number = create(engine, people)
    do(engine, people, "M005", number, "submit")
    card = await push_card(app, client, engine, people, "M003", number)
    data = button(card, "ver")
    stranger = people["M006"]  # not bound
    sent = await app.bot.send_message(stranger.id, card.text or "", reply_markup=None)
    message = await client.wait_for(stranger.id, lambda r: r.message_id == sent.message_id)

    answer = await press(client, stranger, message, data, forged=True)

    assert answer.show_alert and "邀请" in (answer.answer_text or "")
    assert f"#{number}" not in (answer.answer_text or "")
    assert item(engine, number).status == "submitted"


# --- acknowledge, plan, note -------------------------------------------------------------------


async def test_the_secretary_acknowledges_by_button_and_the_card_shows_in_progress(
    app: BotApplication, client: SandboxClient, people: People, engine: Engine
) -> None:
    number = create(engine, people)
    card = await push_card(app, client, engine, people, "M005", number)

    answer = await press(client, people["M005"], card, button(card, "ack"))

    assert answer.answer_text == "已确认收到。"
    edited = await client.wait_for(people["M005"].id, lambda record: bool(record.edits))
    assert edited.message_id == card.message_id and "整改中" in (edited.text or "")
    assert not any(data.startswith("ack:") for data in edited.buttons)
    assert item(engine, number).status == "in_progress"


async def test_plan_and_note_move_an_open_item_to_in_progress(
    app: BotApplication, client: SandboxClient, people: People, engine: Engine
) -> None:
    planned, noted, by_days = create(engine, people), create(engine, people), create(engine, people)

    plan = await ask(client, people["M005"], f"/plan {planned} 召开专题组织生活会 | 2026年3月10日")
    note = await ask(client, people["M005"], f"/note {noted} 已完成自查，正在补齐记录")
    days = await ask(client, people["M005"], f"/plan #{by_days} 补齐会议记录 5")

    assert "召开专题组织生活会（2026-03-10）" in (plan.text or "") and "整改中" in (plan.text or "")
    assert "已记录进展说明" in (note.text or "") and "整改中" in (note.text or "")
    assert "（2026-03-09）" in (days.text or "")  # five working days after Monday 2 March
    for number in (planned, noted, by_days):
        assert item(engine, number).status == "in_progress"
    with Session(engine) as session:
        steps = session.exec(select(Milestone).order_by(col(Milestone.id))).all()
        assert [(s.item_number, s.title, s.due_date) for s in steps] == [
            (planned, "召开专题组织生活会", date(2026, 3, 10)),
            (by_days, "补齐会议记录", date(2026, 3, 9)),
        ]
    assert "已完成自查" in events_of(engine, noted)[-1].data


async def test_a_secretary_of_another_branch_cannot_act_on_someone_elses_item(
    app: BotApplication, client: SandboxClient, people: People, engine: Engine
) -> None:
    number = create(engine, people)  # B01's; M007 is the secretary of B02
    do(engine, people, "M005", number, "submit")
    other = create(engine, people)
    before = counts(engine)

    for text in (
        f"/verify {number}",
        f"/reject {number} 不合格",
        f"/plan {other} 整改 | 2026-03-10",
        f"/note {other} 已整改",
        f"/extend {other} 2026-03-31 需要更多时间",
        f"/split {other} all",
    ):
        reply = await ask(client, people["M007"], text)
        assert "没有编号为" in (reply.text or ""), text
        assert "三会一课" not in (reply.text or ""), text

    assert counts(engine) == before
    assert item(engine, number).status == "submitted" and item(engine, other).status == "open"


# --- extend and split -----------------------------------------------------------------------------


async def test_extend_then_an_inspector_approves_with_the_button(
    app: BotApplication, client: SandboxClient, people: People, engine: Engine
) -> None:
    number = create(engine, people)

    reply = await ask(client, people["M005"], f"/extend {number} 2026-03-31 需等待区委组织部批复")

    assert "2026-03-31" in (reply.text or "") and "等待审批" in (reply.text or "")
    with Session(engine) as session:
        request = session.exec(select(Extension).where(Extension.item_number == number)).one()
        assert request.approved is None and request.reason == "需等待区委组织部批复"
    card = await push_card(app, client, engine, people, "M003", number)

    answer = await press(client, people["M003"], card, button(card, "xa"))

    assert "2026-03-31" in (answer.answer_text or "")
    edited = await client.wait_for(people["M003"].id, lambda record: bool(record.edits))
    assert edited.message_id == card.message_id
    assert "截止 2026-03-31" in (edited.text or "") and "已延期 1 次" in (edited.text or "")
    assert not any(data.startswith(("xa:", "xd:")) for data in edited.buttons)
    extended = item(engine, number)
    assert extended.due_date == date(2026, 3, 31) and extended.extensions == 1


async def test_an_inspector_denies_an_extension_with_the_button(
    app: BotApplication, client: SandboxClient, people: People, engine: Engine
) -> None:
    number = create(engine, people)
    await ask(client, people["M005"], f"/extend {number} 20 工作量大")
    card = await push_card(app, client, engine, people, "M003", number)

    answer = await press(client, people["M003"], card, button(card, "xd"))

    assert answer.answer_text == "已不同意延期申请。"
    denied = item(engine, number)
    assert denied.due_date == DUE and denied.extensions == 0
    with Session(engine) as session:
        assert session.exec(select(Extension)).one().approved is False


async def test_split_all_hands_a_committee_item_down_to_every_branch_below(
    app: BotApplication, client: SandboxClient, people: People, engine: Engine
) -> None:
    number = create(engine, people, org="C01", title="基层党组织换届不及时")

    reply = await ask(client, people["M003"], f"/split {number} all")

    with Session(engine) as session:
        children = session.exec(
            select(Item).where(Item.parent_number == number).order_by(col(Item.number))
        ).all()
        orgs = sorted(people.district.orgs[code] for code in ("B01", "B02", "B03"))
        assert sorted(child.org_id for child in children) == orgs
    text = reply.text or ""
    assert "下发 3 个单位，已销号 0 个" in text
    assert all(f"#{child.number}" in text for child in children)
    assert item(engine, number).status == "in_progress"


async def test_split_names_orgs_by_code_or_by_part_of_their_name(
    app: BotApplication, client: SandboxClient, people: People, engine: Engine
) -> None:
    number = create(engine, people, org="C01")

    reply = await ask(client, people["M003"], f"/split {number} B01 东关")

    with Session(engine) as session:
        children = session.exec(select(Item).where(Item.parent_number == number)).all()
        got = sorted(child.org_id for child in children)
    assert got == sorted(people.district.orgs[code] for code in ("B01", "B03"))
    assert "镇机关第一党支部" in (reply.text or "") and "东关社区党支部" in (reply.text or "")


# --- bad input ------------------------------------------------------------------------------------

#: (who, command, what the answer says). {open} is B01's open item, {submitted}
#: B01's submitted one, {committee} C01's, {other} B04's (outside M003's and
#: M005's scope).
BAD_INPUT = [
    ("M003", "/verify", "用法：/verify"),
    ("M003", "/verify abc", "“abc”不是事项编号"),
    ("M003", "/verify 1234567890123", "不是事项编号"),
    ("M003", "/verify {submitted} 再说一句", "用法：/verify"),
    ("M003", "/verify 99999", "没有编号为 #99999"),
    ("M003", "/verify {other}", "没有编号为"),
    ("M003", "/verify {open}", "尚未提交"),
    ("M005", "/verify {submitted}", "您的角色不能执行此操作"),
    ("M003", "/reject", "用法：/reject"),
    ("M003", "/reject {submitted}", "用法：/reject"),
    ("M003", "/reject 十二 理由", "不是事项编号"),
    ("M003", "/reject {submitted} " + "长" * 1001, "过长（1001 字），最多 1000 字"),
    ("M003", "/reject {other} 不合格", "没有编号为"),
    ("M005", "/plan", "用法：/plan"),
    ("M005", "/plan {open}", "用法：/plan"),
    ("M005", "/plan {open} 召开组织生活会", "用法：/plan"),
    ("M005", "/plan {open} 召开组织生活会 |", "用法：/plan"),
    ("M005", "/plan {open} | 2026-03-10", "用法：/plan"),
    ("M005", "/plan x 召开组织生活会 | 2026-03-10", "不是事项编号"),
    ("M005", "/plan {open} 召开组织生活会 | 下周", "不是日期"),
    ("M005", "/plan {open} 召开组织生活会 | 2026-02-30", "不是日期"),
    ("M005", "/plan {open} 召开组织生活会 | 2026-03-01", "已过"),
    ("M005", "/plan {open} 召开组织生活会 | 2099-01-01", "太远"),
    ("M005", "/plan {open} " + "步" * 201 + " | 2026-03-10", "过长"),
    ("M005", "/plan {other} 召开组织生活会 | 2026-03-10", "没有编号为"),
    ("M005", "/note", "用法：/note"),
    ("M005", "/note {open}", "用法：/note"),
    ("M005", "/note #x 已整改", "不是事项编号"),
    ("M005", "/note {open} " + "字" * 4001, "过长"),
    ("M005", "/note {other} 已整改", "没有编号为"),
    ("M005", "/note {submitted} 补充说明", "已提交"),
    ("M005", "/extend", "用法：/extend"),
    ("M005", "/extend {open}", "用法：/extend"),
    ("M005", "/extend {open} 2026-03-31", "用法：/extend"),
    ("M005", "/extend {open} 下个月 工作量大", "不是日期"),
    ("M005", "/extend {open} 2026-03-01 工作量大", "已过"),
    ("M005", "/extend {open} 2026-03-31 " + "由" * 1001, "过长"),
    ("M005", "/extend {other} 2026-03-31 工作量大", "没有编号为"),
    ("M005", "/extend {submitted} 2026-03-31 工作量大", "已提交"),
    ("M003", "/split", "用法：/split"),
    ("M003", "/split {committee}", "用法：/split"),
    ("M003", "/split {committee} all B01", "用法：/split"),
    ("M003", "/split abc all", "不是事项编号"),
    ("M003", "/split {committee} 不存在的支部", "找不到组织"),
    ("M003", "/split {committee} B04", "找不到组织"),
    ("M003", "/split {committee} C01", "不是该事项所属组织的下级"),
    ("M003", "/split {other} all", "没有编号为"),
    ("M005", "/split {open} all", "您的角色不能执行此操作"),
]


async def test_bad_input_gets_a_clear_answer_and_writes_nothing(
    app: BotApplication, client: SandboxClient, people: People, engine: Engine
) -> None:
    numbers = {
        "open": create(engine, people),
        "submitted": create(engine, people),
        "committee": create(engine, people, org="C01"),
        "other": create(engine, people, org="B04", by="M013"),
    }
    do(engine, people, "M005", numbers["submitted"], "submit")
    before = counts(engine)

    for who, template, expected in BAD_INPUT:
        text = template.format(**numbers)
        reply = await ask(client, people[who], text)
        assert expected in (reply.text or ""), (text[:80], reply.text)
        assert counts(engine) == before, text[:80]
        assert not reply.buttons, text[:80]  # a refusal, not a card


# --- generated input ---------------------------------------------------------------------

_FRAGMENTS = st.sampled_from(
    ["", " ", "|", "｜", "\n", "#", "all", "0", "5", "-1", "999", "整改", "理由"]
    + ["2026-03-10", "2026/3/31", "2026年3月31日", "2026-02-30", "2025-12-31", "2099-01-01"]
)
_FREE = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=30)
_ARGUMENTS = st.one_of(
    st.lists(st.one_of(_FRAGMENTS, _FREE), max_size=6).map(" ".join),
    st.text(alphabet="长 |", min_size=995, max_size=1010),
)
_NUMBERS = st.sampled_from(["{n}", "{n}", "{n}", "#{n}", "", "abc", "0", "99999", "{other}"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    command=st.sampled_from(["reject", "note", "plan", "extend"]),
    number=_NUMBERS,
    text=_ARGUMENTS,
)
async def test_generated_arguments_always_get_an_answer_and_invalid_ones_write_nothing(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    command: str,
    number: str,
    text: str,
) -> None:
    # State carries over between examples (one app per test); the property
    # holds whatever the item's status: a change comes with its card, and
    # every answer that is not a card wrote nothing.
    numbers = _items_for(engine, people)
    who = "M003" if command == "reject" else "M005"
    target = numbers["submitted"] if command == "reject" else numbers["open"]
    typed = number.format(n=target, other=numbers["other"])
    message = f"/{command} {typed} {text}".strip()
    before = counts(engine)

    reply = await ask(client, people[who], message[:4096])

    assert reply.text
    written = counts(engine)["Event"] - before["Event"]
    if not reply.buttons:  # a refusal or a usage line: cards always carry buttons
        event(f"/{command} refused")
        assert counts(engine) == before, message[:120]
    else:
        event(f"/{command} changed the item")
        assert written == 1, message[:120]
        if command == "reject":  # submit again, so later examples can reject too
            do(engine, people, "M005", target, "submit")


def _items_for(engine: Engine, people: People) -> dict[str, int]:
    """The generated test's items, created on its first example and found again after."""
    with Session(engine) as session:
        existing = session.exec(select(Item.number, Item.title).order_by(col(Item.number))).all()
    found = {title: number for number, title in existing if title.startswith("生成-")}
    if len(found) == 3:
        return {key.removeprefix("生成-"): number for key, number in found.items()}
    numbers = {
        "open": create(engine, people, title="生成-open"),
        "submitted": create(engine, people, title="生成-submitted"),
        "other": create(engine, people, org="B04", by="M013", title="生成-other"),
    }
    do(engine, people, "M005", numbers["submitted"], "submit")
    return numbers
