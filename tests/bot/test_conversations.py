"""SPEC §4 conversations end to end: /new (one-shot and guided), /commit, /submit … /done,
/cancel, reasons asked for by buttons, reply-to-attach and the evidence archive.

The flows' state lives in the database, so a new Application on the same
database carries on where the old one stopped."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from bot.app import build_application
from bot.polling import Poller
from bot.services import BotApplication
from models import clock
from models.db import transaction
from models.drafts import start_draft
from models.ledger import NewItem, act, create_item, get_item
from models.people import actor_for
from models.tables import Card, Draft, Event, Evidence, Item, Notification
from sandbox.botapi import BotApiServer, MessageRecord, SandboxClient, User, tiny_png
from settings import Settings
from tests.bot.conftest import POLL_TIMEOUT
from tests.bot.support import People

PHOTO = tiny_png(8, 6)


@contextlib.asynccontextmanager
async def running_bot(settings: Settings, engine: Engine) -> AsyncIterator[BotApplication]:
    """A bot process of its own: built, polling, then stopped as a restart would stop it."""
    application = build_application(settings, engine)
    async with application:
        assert application.post_init is not None
        await application.post_init(application)
        await application.start()
        stop = asyncio.Event()
        polling = asyncio.create_task(Poller(application, timeout=POLL_TIMEOUT).run(stop))
        try:
            yield application
        finally:
            stop.set()
            await polling
            await application.stop()


def make_item(
    engine: Engine,
    people: People,
    *,
    org: str = "B01",
    creator: str = "M003",
    title: str = "党员发展材料不规范",
    submitted_by: str | None = None,
) -> int:
    """An item logged by an inspector (and submitted, when asked), straight in the database."""
    with transaction(engine) as session:
        district = people.district
        actor = actor_for(session, district.members[creator])
        new = NewItem(
            kind="problem", org_id=district.orgs[org], title=title, due_date=date(2026, 3, 20)
        )
        item = create_item(session, actor, new, today=date(2026, 3, 2))
        assert item.number is not None
        if submitted_by is not None:
            act(session, actor_for(session, district.members[submitted_by]), item.number, "submit")
        return item.number


def item_in(engine: Engine, number: int) -> Item:
    with Session(engine) as session:
        return get_item(session, number)


def evidence_of(engine: Engine, number: int) -> list[Evidence]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(Evidence).where(Evidence.item_number == number).order_by(col(Evidence.id))
            ).all()
        )


def count(engine: Engine, table: type) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(table)).one()


def draft_of(engine: Engine, people: People, code: str) -> Draft | None:
    with Session(engine) as session:
        return session.get(Draft, people.district.members[code])


def button(message: MessageRecord, label: str) -> str:
    """The callback data of the button whose text starts with `label`."""
    for text, data in zip(message.button_texts, message.buttons, strict=True):
        if text.startswith(label):
            return data
    raise AssertionError(f"no button {label!r} among {message.button_texts}")


async def say(
    client: SandboxClient, user: User, text: str, expect: str | None = None
) -> MessageRecord:
    """The user sends text; the bot's next message (containing `expect`, when given)."""
    sent = client.send_text(user, text)
    return await client.wait_for(user.id, expect, after=sent)


async def tap(
    client: SandboxClient, user: User, message: MessageRecord, label: str, expect: str | None = None
) -> MessageRecord:
    """The user presses a button; the bot's next message after the pressed one."""
    last = client.last(user.id)
    query = client.press(user, message, button(message, label))
    await client.wait_for_answer(query)
    return await client.wait_for(user.id, expect, after=last)


# -- /new one-shot ------------------------------------------------------------------------------


async def test_an_inspector_logs_a_finding_and_the_photo_and_location_sent_after_are_attached(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
) -> None:
    inspector = people["M003"]
    card = await say(client, inspector, "/new B01 | 三会一课记录不全 | 5", "#1")
    assert "已登记问题 #1" in card.text and "待整改" in card.text and "2026-03-09" in card.text
    item = item_in(engine, 1)
    assert (item.kind, item.source, item.title) == ("problem", "inspection", "三会一课记录不全")
    assert item.org_id == people.district.orgs["B01"]
    assert item.responsible_id == people.district.members["M005"]  # the branch secretary
    assert item.due_date == date(2026, 3, 9)  # 5 working days after Monday 2 March

    photo = client.send_photo(inspector, PHOTO, caption="会议记录本")
    assert "#1：已附上" in (await client.wait_for(inspector.id, "已附上", after=photo)).text
    place = client.send_location(inspector, 34.2655, 108.9542)
    ack = await client.wait_for(inspector.id, "已附上", after=place)
    assert "共 2 件" in ack.text

    photo_row, place_row = evidence_of(engine, 1)
    assert photo_row.kind == "photo" and photo_row.text == "会议记录本"
    assert photo_row.file_unique_id == photo.photo[-1].file_unique_id
    assert photo_row.file_id == photo.photo[-1].file_id
    assert (place_row.kind, place_row.latitude, place_row.longitude) == (
        "location",
        34.2655,
        108.9542,
    )


async def test_new_with_a_severity_and_no_date_is_due_by_the_severity_default(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
) -> None:
    await say(client, people["M003"], "/new 东关社区 | 党费收缴台账缺失 | | 严重", "#1")
    item = item_in(engine, 1)
    assert item.severity == "severe"
    assert item.org_id == people.district.orgs["B03"]  # an unambiguous name fragment
    assert item.due_date == date(2026, 3, 9)  # severe: 5 working days


async def test_new_with_a_bad_org_date_or_title_says_what_is_wrong_and_writes_nothing(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
) -> None:
    inspector = people["M003"]
    unknown = await say(client, inspector, "/new X99 | 三会一课记录不全 | 5")
    assert "找不到组织“X99”" in unknown.text
    ambiguous = await say(client, inspector, "/new 镇机关 | 三会一课记录不全 | 5")
    assert "对应多个组织" in ambiguous.text and "B01" in ambiguous.text and "B02" in ambiguous.text
    past = await say(client, inspector, "/new B01 | 三会一课记录不全 | 2026-02-27")
    assert "2026-02-27 已过" in past.text
    garbled = await say(client, inspector, "/new B01 | 三会一课记录不全 | 下周")
    assert "不是日期" in garbled.text
    long_title = await say(client, inspector, f"/new B01 | {'记' * 201} | 5")
    assert "标题过长（201 字），最多 200 字" in long_title.text
    outside = await say(client, people["M013"], "/new B01 | 三会一课记录不全 | 5")
    assert "找不到组织“B01”" in outside.text  # GRP2 covers C02, not B01
    usage = await say(client, inspector, "/new B01")
    assert "用法" in usage.text
    assert count(engine, Item) == 0 and count(engine, Draft) == 0 and count(engine, Event) == 0


async def test_a_secretary_adds_a_commitment_for_the_branch_but_not_for_another(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
) -> None:
    secretary = people["M005"]
    card = await say(client, secretary, "/commit B01 | 每月开展主题党日 | 2026-03-31", "#1")
    assert "已登记承诺 #1" in card.text
    item = item_in(engine, 1)
    assert (item.kind, item.due_date) == ("commitment", date(2026, 3, 31))
    refused = await say(client, secretary, "/commit B02 | 每月开展主题党日 | 2026-03-31")
    assert "找不到组织“B02”" in refused.text
    assert count(engine, Item) == 1
    problem = await say(client, secretary, "/new B01 | 三会一课记录不全 | 5")
    assert "角色不能" in problem.text  # logging findings is for inspectors and leaders
    assert count(engine, Item) == 1


# -- the guided /new ---------------------------------------------------------------------------


async def test_the_guided_new_asks_one_question_at_a_time_and_ends_with_an_item(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
) -> None:
    inspector = people["M003"]
    question = await say(client, inspector, "/new", "1/7")
    assert "组织" in question.text
    choices = await say(client, inspector, "镇机关", "对应多个组织")
    assert [label.split()[0] for label in choices.button_texts] == ["B01", "B02", "G01"]
    other_org = button(choices, "B02")
    category = await tap(client, inspector, choices, "B01", "2/7")
    severity = await tap(client, inspector, category, "跳过", "3/7")
    assert severity.button_texts == ["一般", "较重", "严重"]
    describe = await tap(client, inspector, severity, "较重", "4/7")
    assert "描述" in describe.text
    evidence = await say(
        client, inspector, "三会一课记录不全\n2025年第四季度支部委员会会议无记录。", "5/7"
    )
    photo = client.send_photo(inspector, PHOTO)
    got = await client.wait_for(inspector.id, "已收到", after=photo)
    assert "共 1 件" in got.text
    due = await tap(client, inspector, evidence, "完成", "6/7")
    assert "2026-03-16" in due.text  # serious: 10 working days
    confirm = await tap(client, inspector, due, "2026-03-16", "7/7")
    assert "镇机关第一党支部" in confirm.text and "较重" in confirm.text
    card = await tap(client, inspector, confirm, "确认", "#1")
    assert "已登记问题 #1" in card.text

    item = item_in(engine, 1)
    assert item.org_id == people.district.orgs["B01"]
    assert (item.title, item.severity, item.category) == ("三会一课记录不全", "serious", "")
    assert item.description == "三会一课记录不全\n2025年第四季度支部委员会会议无记录。"
    assert item.due_date == date(2026, 3, 16)
    (row,) = evidence_of(engine, 1)
    assert (row.kind, row.file_unique_id) == ("photo", photo.photo[-1].file_unique_id)
    # An answered question's buttons are gone, and a press of an old one changes nothing.
    assert not confirm.buttons
    assert not choices.buttons
    stale = client.press(inspector, choices, other_org, forged=True)
    assert (
        await client.wait_for_answer(stale)
    ).answer_text == "这个问题已经回答过了，或操作已结束。"
    assert count(engine, Item) == 1


async def test_the_guided_new_refuses_a_too_long_description_and_asks_again(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
) -> None:
    inspector = people["M003"]
    await say(client, inspector, "/new", "1/7")
    await say(client, inspector, "B03", "2/7")
    await say(client, inspector, "组织生活", "3/7")
    await say(client, inspector, "一般", "4/7")
    again = await say(client, inspector, "记" * 4001, "4/7")
    assert "描述过长（4001 字），最多 4000 字" in again.text
    await say(client, inspector, "党费收缴不及时", "5/7")
    due = await say(client, inspector, "/done", "6/7")
    assert "2026-03-30" in due.text  # general: 20 working days
    past = await say(client, inspector, "2026-03-01", "6/7")
    assert "2026-03-01 已过" in past.text
    confirm = await say(client, inspector, "3", "7/7")
    assert "2026-03-05" in confirm.text and "组织生活" in confirm.text
    await say(client, inspector, "确认", "#1")
    item = item_in(engine, 1)
    assert (item.category, item.due_date) == ("组织生活", date(2026, 3, 5))


async def test_a_forged_org_button_outside_the_scope_changes_nothing(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
) -> None:
    inspector = people["M003"]
    await say(client, inspector, "/new", "1/7")
    choices = await say(client, inspector, "党支部", "对应多个组织")
    nonce = button(choices, "B01").split(":")[2]
    outside = people.district.orgs["B04"]  # under C02, which GRP1 does not cover
    last = client.last(inspector.id)
    query = client.press(inspector, choices, f"nw:{outside}:{nonce}:org", forged=True)
    await client.wait_for_answer(query)
    refused = await client.wait_for(inspector.id, "1/7", after=last)
    assert f"找不到组织“{outside}”" in refused.text and "B04" not in refused.text
    draft = draft_of(engine, people, "M003")
    assert draft is not None and draft.step == "org"


async def test_a_guided_new_resumes_at_the_same_step_after_a_restart(
    bot_settings: Settings,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
) -> None:
    inspector = people["M003"]
    async with running_bot(bot_settings, engine):
        await say(client, inspector, "/new", "1/7")
        await say(client, inspector, "东关社区", "2/7")
    draft = draft_of(engine, people, "M003")
    assert draft is not None and (draft.flow, draft.step) == ("new", "category")
    async with running_bot(bot_settings, engine):
        severity = await say(client, inspector, "组织生活", "3/7")
        assert severity.button_texts == ["一般", "较重", "严重"]
        resumed = await say(client, inspector, "/new", "继续")
        assert "3/7" in resumed.text
        assert "已取消" in (await say(client, inspector, "/cancel")).text
    assert count(engine, Item) == 0 and count(engine, Draft) == 0


# -- /submit … /done ----------------------------------------------------------------------------


async def test_a_secretary_submits_with_six_kinds_of_evidence_and_the_inspectors_are_told(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
) -> None:
    number = make_item(engine, people)
    secretary = people["M005"]
    opened = await say(client, secretary, f"/submit {number}", f"#{number}")
    assert "/done" in opened.text
    sends = [
        lambda: client.send_photo(secretary, PHOTO),
        lambda: client.send_document(secretary, b"%PDF-1.4 minutes", "支委会记录.pdf"),
        lambda: client.send_voice(secretary, b"OggS voice", duration=3),
        lambda: client.send_video(secretary, b"\x00\x00\x00\x18ftypmp42", duration=5),
        lambda: client.send_location(secretary, 34.26, 108.95),
        lambda: client.send_text(secretary, "已补齐2025年第四季度会议记录并经支委签字。"),
    ]
    for received, send in enumerate(sends, start=1):
        sent = send()
        ack = await client.wait_for(secretary.id, "已收到", after=sent)
        assert f"{received} 件" in ack.text
    assert evidence_of(engine, number) == []  # collected in the draft until /done

    card = await say(client, secretary, "/done", "待验收")
    assert f"#{number} 已提交" in card.text and "6 件" in card.text
    item = item_in(engine, number)
    assert item.status == "submitted" and item.submitted_by_id == people.district.members["M005"]
    rows = evidence_of(engine, number)
    assert [row.kind for row in rows] == ["photo", "document", "voice", "video", "location", "text"]
    assert rows[1].file_name == "支委会记录.pdf"
    assert all(row.file_unique_id for row in rows[:4])
    assert rows[5].text == "已补齐2025年第四季度会议记录并经支委签字。"
    with Session(engine) as session:
        told = session.exec(
            select(Notification.recipient_id).where(
                Notification.item_number == number, Notification.stage == "submitted"
            )
        ).all()
    assert set(told) == {people.district.members["M003"], people.district.members["M004"]}
    assert draft_of(engine, people, "M005") is None


async def test_submit_then_cancel_attaches_nothing(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
) -> None:
    number = make_item(engine, people)
    secretary = people["M005"]
    await say(client, secretary, f"/submit {number} 已整改", f"#{number}")
    sent = client.send_photo(secretary, PHOTO)
    await client.wait_for(secretary.id, "2 件", after=sent)  # the report counts as text
    cancelled = await say(client, secretary, "/cancel")
    assert "未附任何材料" in cancelled.text
    assert item_in(engine, number).status == "open"
    assert evidence_of(engine, number) == [] and draft_of(engine, people, "M005") is None
    assert "没有进行中的操作" in (await say(client, secretary, "/cancel")).text


async def test_submit_is_refused_at_once_for_someone_who_may_not_submit(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
) -> None:
    number = make_item(engine, people)
    refused = await say(client, people["M007"], f"/submit {number}")
    assert f"#{number} 不在您的职责范围内" in refused.text
    assert "没有编号为 #99" in (await say(client, people["M005"], "/submit 99")).text
    assert count(engine, Draft) == 0


async def test_done_without_evidence_asks_once_and_submits_when_told_to(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
) -> None:
    number = make_item(engine, people)
    secretary = people["M005"]
    await say(client, secretary, f"/submit {number}", f"#{number}")
    question = await say(client, secretary, "/done", "还没有任何佐证材料")
    assert item_in(engine, number).status == "open"
    card = await tap(client, secretary, question, "不附材料", "待验收")
    assert "0 件" in card.text
    assert item_in(engine, number).status == "submitted"


async def test_commands_still_work_while_a_submission_is_open(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
) -> None:
    number = make_item(engine, people)
    secretary = people["M005"]
    await say(client, secretary, f"/submit {number}", f"#{number}")
    assert "角色" in (await say(client, secretary, "/whoami")).text
    busy = await say(client, secretary, "/commit B01 | 每月开展主题党日 | 10")
    assert f"正在提交 #{number}" in busy.text
    assert count(engine, Item) == 1


async def test_the_submit_button_on_a_card_opens_the_same_flow(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
) -> None:
    secretary = people["M005"]
    card = await say(client, secretary, "/commit B01 | 每月开展主题党日 | 10", "#1")
    submit_data = button(card, "提交整改")
    assert submit_data.startswith("sub:1:")

    forged = client.press(people["M007"], card, submit_data, forged=True)
    answered = await client.wait_for_answer(forged)
    assert answered.show_alert and "不在您的职责范围内" in (answered.answer_text or "")
    stale = client.press(secretary, card, "sub:1:999", forged=True)
    assert "已过时" in ((await client.wait_for_answer(stale)).answer_text or "")
    assert draft_of(engine, people, "M007") is None

    opened = await tap(client, secretary, card, "提交整改", "提交 #1")
    assert "/done" in opened.text
    sent = client.send_photo(secretary, PHOTO)
    await client.wait_for(secretary.id, "已收到 1 件", after=sent)
    await say(client, secretary, "/done", "待验收")
    assert item_in(engine, 1).status == "submitted" and len(evidence_of(engine, 1)) == 1


async def test_evidence_sent_in_a_burst_right_after_submit_is_kept_in_order(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
) -> None:
    # Updates are handled concurrently; one person's still reach the flow in order.
    number = make_item(engine, people)
    secretary = people["M005"]
    client.send_text(secretary, f"/submit {number}")
    photos = [client.send_photo(secretary, tiny_png(side, side)) for side in (3, 4, 5)]
    client.send_location(secretary, 34.26, 108.95)
    client.send_text(secretary, "/done")
    await client.wait_for(secretary.id, "待验收", timeout=10)
    rows = evidence_of(engine, number)
    assert [row.file_unique_id for row in rows[:3]] == [p.photo[-1].file_unique_id for p in photos]
    assert rows[3].kind == "location" and len(rows) == 4


async def test_an_open_submission_survives_a_restart_of_the_bot(
    bot_settings: Settings,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
) -> None:
    number = make_item(engine, people)
    secretary = people["M005"]
    async with running_bot(bot_settings, engine):
        await say(client, secretary, f"/submit {number}", f"#{number}")
        first = client.send_photo(secretary, PHOTO)
        await client.wait_for(secretary.id, "已收到 1 件", after=first)
    # The first process is gone; only the database remembers the open submission.
    async with running_bot(bot_settings, engine):
        second = client.send_photo(secretary, tiny_png(5, 5))
        await client.wait_for(secretary.id, "已收到 2 件", after=second)
        await say(client, secretary, "/done", "待验收")
    rows = evidence_of(engine, number)
    assert [row.file_unique_id for row in rows] == [
        first.photo[-1].file_unique_id,
        second.photo[-1].file_unique_id,
    ]
    assert item_in(engine, number).status == "submitted"


# -- reasons, replies, the archive ----------------------------------------------------------------


async def test_a_reason_draft_takes_the_next_text_as_the_reason_for_rejecting(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
) -> None:
    number = make_item(engine, people, submitted_by="M005")
    inspector = people["M003"]
    with transaction(engine) as session:
        version = get_item(session, number).version
        data = {"action": "reject", "version": version}
        start_draft(
            session, people.district.members["M003"], "reason", item_number=number, data=data
        )
    too_long = await say(client, inspector, "理" * 1001)
    assert "理由过长（1001 字）" in too_long.text and "重新发送" in too_long.text
    assert item_in(engine, number).status == "submitted"
    card = await say(client, inspector, "会议记录缺少支委签字，请补充。", f"#{number}")
    assert "整改中" in card.text
    item = item_in(engine, number)
    assert (item.status, item.rejections) == ("in_progress", 1)
    with Session(engine) as session:
        event = session.exec(
            select(Event).where(Event.item_number == number, Event.action == "reject")
        ).one()
    assert event.reason == "会议记录缺少支委签字，请补充。"
    assert draft_of(engine, people, "M003") is None


async def test_replying_to_a_card_attaches_text_and_media_to_its_item(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
) -> None:
    inspector = people["M003"]
    card = await say(client, inspector, "/new B01 | 三会一课记录不全 | 5", "#1")
    assert "附材料结束" in (await say(client, inspector, "/done")).text
    stray = await say(client, inspector, "这条消息不属于任何事项")
    assert "没有对应的事项" in stray.text
    sent = client.send_text(inspector, "现场核实：记录本缺第四季度。", reply_to=card)
    assert "#1：已附上" in (await client.wait_for(inspector.id, "已附上", after=sent)).text
    photo = client.send_photo(inspector, PHOTO, reply_to=card)
    await client.wait_for(inspector.id, "共 2 件", after=photo)
    again = client.send_photo(inspector, PHOTO, reply_to=card)
    again_photo_id = again.photo[-1].file_unique_id
    await client.wait_for(inspector.id, "已附上", after=again)
    text_row, photo_row, third = evidence_of(engine, 1)
    assert (text_row.kind, text_row.text) == ("text", "现场核实：记录本缺第四季度。")
    assert photo_row.kind == "photo" and third.file_unique_id == again_photo_id
    outsider = client.send_text(people["M007"], "我也来附一条", reply_to=None)
    await client.wait_for(people["M007"].id, "没有对应的事项", after=outsider)


async def test_acknowledgements_are_not_recorded_as_cards_yet_a_reply_to_one_attaches(
    app: BotApplication,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
) -> None:
    # Delivery edits recorded cards in place when the item changes (SPEC §7): an
    # acknowledgement must stay one, so only the item's card is recorded.
    inspector = people["M003"]
    card = await say(client, inspector, "/new B01 | 三会一课记录不全 | 5", "#1")
    photo = client.send_photo(inspector, PHOTO)
    ack = await client.wait_for(inspector.id, "#1：已附上", after=photo)
    finished = await say(client, inspector, "/done", "附材料结束")
    own = client.send_text(inspector, "#1：我自己写的一句话")
    await client.wait_for(inspector.id, "没有对应的事项", after=own)

    sent = client.send_text(inspector, "补充：第四季度记录已找到。", reply_to=ack)
    again = await client.wait_for(inspector.id, "已附上", after=sent)
    assert "#1" in again.text and "共 2 件" in again.text
    mine = client.send_text(inspector, "回复我自己的话", reply_to=own)
    await client.wait_for(inspector.id, "没有对应的事项", after=mine)  # only the bot names items
    assert evidence_of(engine, 1)[-1].text == "补充：第四季度记录已找到。"
    with Session(engine) as session:
        recorded = session.exec(select(Card.message_id).where(Card.chat_id == inspector.id)).all()
    assert card.message_id in recorded
    assert not {ack.message_id, finished.message_id, again.message_id} & set(recorded)


async def test_evidence_dir_keeps_a_photo_under_its_sha256(
    bot_settings: Settings,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
    tmp_path: Path,
) -> None:
    settings = bot_settings.model_copy(update={"EVIDENCE_DIR": str(tmp_path / "evidence")})
    inspector = people["M003"]
    async with running_bot(settings, engine):
        await say(client, inspector, "/new B01 | 三会一课记录不全 | 5", "#1")
        photo = client.send_photo(inspector, PHOTO)
        await client.wait_for(inspector.id, "已附上", after=photo)
    (row,) = evidence_of(engine, 1)
    digest = hashlib.sha256(PHOTO).hexdigest()
    assert row.sha256 == digest
    assert row.archived_path is not None
    archived = Path(row.archived_path)
    assert archived.parent == tmp_path / "evidence" / digest[:2]
    assert archived.name.startswith(digest) and archived.read_bytes() == PHOTO


async def test_a_failed_download_keeps_the_evidence_row_without_an_archive_copy(
    bot_settings: Settings,
    botapi: BotApiServer,
    client: SandboxClient,
    people: People,
    engine: Engine,
    frozen_clock: clock.FrozenClock,
    tmp_path: Path,
) -> None:
    settings = bot_settings.model_copy(update={"EVIDENCE_DIR": str(tmp_path / "evidence")})
    number = make_item(engine, people)
    secretary = people["M005"]
    async with running_bot(settings, engine):
        await say(client, secretary, f"/submit {number}", f"#{number}")
        photo = client.send_photo(secretary, PHOTO)
        await client.wait_for(secretary.id, "已收到 1 件", after=photo)
        botapi.fail_next("getFile", status=500)
        await say(client, secretary, "/done", "待验收")
    (row,) = evidence_of(engine, number)
    assert row.file_id == photo.photo[-1].file_id
    assert row.sha256 is None and row.archived_path is None
    assert not (tmp_path / "evidence").exists() or not any((tmp_path / "evidence").rglob("*"))
