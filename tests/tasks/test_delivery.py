"""Delivery end to end (SPEC §5, §7): outbox rows become Telegram messages through
the real Redis broker, a real dramatiq Worker and the local Bot API server, on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from bot.services import Services
from cli import app, context
from models import clock
from models.db import transaction
from models.delivery import Changes, mark_enqueued
from models.ledger import act
from models.outbox import notify
from models.people import actor_for
from models.states import Action
from models.tables import Attachment, Card, Member, Notification
from sandbox.botapi import BotApiServer, Limits, tiny_png
from settings import get_settings
from tasks import delivery, load_actors
from tasks.broker import queue_backlog
from tasks.delivery import deliver, deliver_now, enqueue_changes, pump, pump_once, refresh_cards
from tasks.limiter import Rates
from tests.support import District
from tests.tasks.support import (
    Delivery,
    bot_messages,
    item,
    make_settings,
    member,
    new_item,
    owe,
    row,
    rows,
    settled,
    wait_until,
)

DUE = date(2026, 3, 20)


def test_an_owed_notification_is_delivered_and_marked_sent(
    redis_delivery: Delivery, district: District, people: dict[str, int]
) -> None:
    engine = redis_delivery.engine
    number = new_item(engine, district, "B01", "三会一课记录不全", DUE, "M005")
    [owed] = [r for r in rows(engine) if r.recipient_id == district.members["M005"]]
    assert owed.id is not None
    deliver.send(owed.id)

    wait_until(settled(engine, [owed.id]), what="the row to be sent")
    sent = row(engine, owed.id)
    assert sent.status == "sent" and sent.attempts == 0 and sent.sent_at is not None
    [message] = bot_messages(redis_delivery.server, people["M005"])
    assert sent.message_id == message.message_id
    assert message.plain_text is not None
    assert f"#{number}" in message.plain_text and "新交办事项" in message.plain_text
    # The card is remembered, so a reply attaches to the item and an edit finds it.
    with Session(engine) as session:
        card = session.get(Card, (people["M005"], message.message_id))
    assert card is not None and card.item_number == number
    assert card.version == item(engine, number).version


def test_running_deliver_again_sends_nothing_twice(
    redis_delivery: Delivery, district: District, people: dict[str, int]
) -> None:
    engine = redis_delivery.engine
    new_item(engine, district, "B01", "台账未及时更新", DUE, "M005")
    [owed] = [r for r in rows(engine) if r.recipient_id == district.members["M005"]]
    assert owed.id is not None
    for _ in range(3):
        deliver.send(owed.id)
    wait_until(settled(engine, [owed.id]))
    redis_delivery.worker.join()
    deliver_now(redis_delivery.rt, owed.id)  # and once more, after it was sent
    redis_delivery.worker.join()
    assert len(bot_messages(redis_delivery.server, people["M005"])) == 1


def test_a_429_waits_retry_after_and_is_delivered_later_not_failed(
    redis_delivery: Delivery, district: District, people: dict[str, int]
) -> None:
    engine, server = redis_delivery.engine, redis_delivery.server
    owed = owe(
        engine, stage="spotcheck", recipient_id=district.members["M003"], data={"text": "抽查"}
    )
    server.fail_next("sendMessage", 429, retry_after=1)
    deliver.send(owed)
    wait_until(lambda: row(engine, owed).not_before is not None, what="the 429 to defer it")
    assert row(engine, owed).status == "pending"
    wait_until(settled(engine, [owed]), what="the row to be sent after retry_after")
    sent = row(engine, owed)
    assert sent.status == "sent" and sent.attempts == 0 and sent.last_error is None
    assert server.calls["sendMessage"] == 2
    assert len(bot_messages(server, people["M003"])) == 1


def test_429s_from_telegram_s_own_limits_lose_nothing(
    start_delivery: Callable[..., Delivery],
    botapi: BotApiServer,
    district: District,
    people: dict[str, int],
) -> None:
    # Our windows wider than the server's (as when another bot shares the token):
    # Telegram answers 429, and every message still arrives, once.
    botapi.set_limits(Limits(global_per_second=30, per_chat_per_second=1))
    engine = start_delivery(rates=Rates(chat_per_second=10), bundle_max=1).engine
    ids = [
        owe(
            engine,
            stage="spotcheck",
            recipient_id=district.members["M003"],
            occurrence=n,
            data={"text": f"第 {n} 条"},
        )
        for n in range(4)
    ]
    for notification_id in ids:
        deliver.send(notification_id)
    wait_until(settled(engine, ids), timeout=30, what="every row to be sent")
    assert botapi.too_many_requests > 0
    assert {r.status for r in rows(engine, ids)} == {"sent"}
    assert all(r.attempts == 0 for r in rows(engine, ids))
    texts = sorted(m.plain_text or "" for m in bot_messages(botapi, people["M003"]))
    assert texts == sorted(f"第 {n} 条" for n in range(4))


def test_5xx_twice_then_success_is_retried_with_the_attempts_counted(
    redis_delivery: Delivery, district: District, people: dict[str, int]
) -> None:
    engine, server = redis_delivery.engine, redis_delivery.server
    owed = owe(engine, stage="spotcheck", recipient_id=district.members["M003"], data={"text": "x"})
    server.fail_next("sendMessage", 502, count=2)
    deliver.send(owed)
    wait_until(settled(engine, [owed]), timeout=20, what="two retries and a send")
    sent = row(engine, owed)
    assert sent.status == "sent" and sent.attempts == 2
    assert "Bad Gateway" in (sent.last_error or "")
    assert len(bot_messages(server, people["M003"])) == 1


def test_retries_give_up_after_the_maximum_and_the_row_shows_failed(
    redis_delivery: Delivery,
    district: District,
    people: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(delivery, "MAX_ATTEMPTS", 2)
    engine, server = redis_delivery.engine, redis_delivery.server
    owed = owe(engine, stage="spotcheck", recipient_id=district.members["M003"], data={"text": "x"})
    server.fail_next("sendMessage", 503, count=5)
    deliver.send(owed)
    wait_until(settled(engine, [owed]), timeout=20)
    failed = row(engine, owed)
    assert failed.status == "failed" and failed.attempts == 2
    assert "gave up after 2 attempts" in (failed.last_error or "")


def test_a_blocked_member_is_marked_unreachable_an_admin_told_and_it_is_listed_failed(
    redis_delivery: Delivery,
    district: District,
    people: dict[str, int],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine, server = redis_delivery.engine, redis_delivery.server
    server.client.block(people["M005"])
    new_item(engine, district, "B01", "被屏蔽的人的问题", DUE, "M005")
    [owed] = [r.id for r in rows(engine) if r.recipient_id == district.members["M005"]]
    assert owed is not None
    deliver.send(owed)
    wait_until(settled(engine, [owed]))
    failed = row(engine, owed)
    assert failed.status == "failed" and "blocked" in (failed.last_error or "")
    assert member(engine, district.members["M005"]).unreachable_at is not None

    told = wait_until(
        lambda: [
            m for m in bot_messages(server, people["M001"]) if "刘支书" in (m.plain_text or "")
        ],
        what="the admin to be told",
    )
    assert len(told) == 1 and "M005" in (told[0].plain_text or "")
    # Once per member: a second failure tells nobody again.
    owed_again = owe(
        engine, stage="spotcheck", recipient_id=district.members["M005"], data={"text": "y"}
    )
    deliver.send(owed_again)
    wait_until(settled(engine, [owed_again]))
    redis_delivery.worker.join()
    assert len([r for r in rows(engine) if r.stage == "unreachable"]) == 1

    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    context.engine.cache_clear()
    try:
        result = CliRunner().invoke(app, ["notifications", "--failed"])
    finally:
        get_settings.cache_clear()
        context.engine.cache_clear()
    assert result.exit_code == 0, result.output
    listed = {
        line.split()[0]: line for line in result.output.splitlines()[1:] if line[:1].isdigit()
    }
    assert set(listed) == {str(owed), str(owed_again)}  # the admin's alert was sent: not listed
    assert "M005 刘支书" in listed[str(owed)] and "failed" in listed[str(owed)]
    assert "Forbidden" in result.output


def test_quiet_hours_defer_a_push_and_it_goes_after_the_window(
    start_delivery: Callable[..., Delivery],
    district: District,
    people: dict[str, int],
    frozen_clock: clock.FrozenClock,
) -> None:
    running = start_delivery(QUIET_HOURS="22:00-07:30")
    engine, server = running.engine, running.server
    frozen_clock.advance(timedelta(hours=14))  # 23:00 in Beijing
    owed = owe(
        engine, stage="remind-1", recipient_id=district.members["M003"], data={"text": "明天到期"}
    )
    deliver.send(owed)
    morning = datetime(2026, 3, 3, 7, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    wait_until(lambda: row(engine, owed).not_before == morning, what="the deferral")
    # … and its job waits on the delay queue, eight and a half hours out.
    assert row(engine, owed).status == "pending"
    assert bot_messages(server, people["M003"]) == []

    frozen_clock.advance(timedelta(hours=8, minutes=35))  # 07:35: the window is over
    # Its delayed job is hours away in real time: the pump, a minute past, is sooner.
    assert pump_once(running.rt) == 1
    wait_until(settled(engine, [owed]), what="the morning send")
    assert row(engine, owed).status == "sent"
    assert [m.plain_text for m in bot_messages(server, people["M003"])] == ["明天到期"]


def test_several_alerts_for_one_member_arrive_as_one_message(
    redis_delivery: Delivery, district: District, people: dict[str, int]
) -> None:
    engine, server = redis_delivery.engine, redis_delivery.server
    numbers = [new_item(engine, district, "B01", f"问题{n}", DUE, "M005") for n in range(3)]
    owed = [r.id for r in rows(engine) if r.recipient_id == district.members["M005"]]
    for notification_id in owed:
        deliver.send(notification_id)
    wait_until(settled(engine, owed))
    redis_delivery.worker.join()
    [message] = bot_messages(server, people["M005"])
    assert message.plain_text is not None
    assert all(f"#{n}" in message.plain_text for n in numbers)
    assert {r.message_id for r in rows(engine, owed)} == {message.message_id}


def test_one_job_for_many_members_sends_each_of_them_one_message(
    redis_delivery: Delivery, district: District, people: dict[str, int]
) -> None:
    # A fan-out's rows come to a job in chunks: one message per member, each
    # bundling that member's rows.
    engine, server = redis_delivery.engine, redis_delivery.server
    codes = ("M003", "M005", "M007")
    for code in codes:
        for n in range(2):
            owe(
                engine,
                stage="spotcheck",
                recipient_id=district.members[code],
                occurrence=n,
                data={"text": f"{code} 抽查 {n}"},
            )
    owed = [r.id for r in rows(engine)]
    deliver.send(*owed)
    wait_until(settled(engine, owed))
    redis_delivery.worker.join()
    for code in codes:
        [message] = bot_messages(server, people[code])
        assert message.plain_text is not None
        assert f"{code} 抽查 0" in message.plain_text and f"{code} 抽查 1" in message.plain_text
    assert server.calls["sendMessage"] == len(codes)


def test_a_row_with_files_given_with_others_goes_as_its_own_message(
    redis_delivery: Delivery, district: District, people: dict[str, int]
) -> None:
    engine, server = redis_delivery.engine, redis_delivery.server
    member_id = district.members["M003"]
    with transaction(engine) as session:
        sheet = Attachment(
            file_name="通报.xlsx",
            mime_type="application/vnd.ms-excel",
            content=b"PK\x03\x04",
            created_at=clock.now(),
        )
        session.add(sheet)
        session.flush()
        sheet_id = sheet.id
    plain = owe(engine, stage="spotcheck", recipient_id=member_id, data={"text": "抽查"})
    filed = owe(
        engine,
        stage="bulletin-weekly",
        recipient_id=member_id,
        data={"text": "周报", "attachments": [sheet_id]},
    )
    deliver.send(plain, filed)
    wait_until(settled(engine, [plain, filed]), timeout=20)
    redis_delivery.worker.join()
    texts = [m.plain_text for m in bot_messages(server, people["M003"]) if m.plain_text]
    assert sorted(texts) == ["周报", "抽查"]
    assert row(engine, plain).status == row(engine, filed).status == "sent"
    assert server.calls["sendDocument"] == 1


def test_a_job_out_of_time_hands_the_messages_left_to_a_new_job(
    redis_delivery: Delivery,
    district: District,
    people: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Many workers sharing Telegram's rate can each get few sends: what a job
    # has not sent within its budget goes back, is not lost and not doubled.
    engine, server = redis_delivery.engine, redis_delivery.server
    monkeypatch.setattr(delivery, "BATCH_BUDGET", timedelta(microseconds=1))
    codes = ("M003", "M005", "M007")
    owed = [
        owe(engine, stage="spotcheck", recipient_id=district.members[code], data={"text": code})
        for code in codes
    ]
    handed: list[tuple[int, ...]] = []
    send = delivery.deliver.send

    def noting(*ids: int) -> object:
        handed.append(ids)
        return send(*ids)

    monkeypatch.setattr(delivery.deliver, "send", noting)
    deliver_now(redis_delivery.rt, *owed)
    wait_until(settled(engine, owed))
    redis_delivery.worker.join()
    assert handed and handed[0] == tuple(owed[1:])  # the first message went, the rest on
    for code in codes:
        assert [m.plain_text for m in bot_messages(server, people[code])] == [code]


def test_a_fan_out_is_enqueued_one_job_per_batch_of_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[tuple[int, ...]] = []
    monkeypatch.setattr(delivery.deliver, "send", lambda *ids: sent.append(ids))
    ids = tuple(range(1, 2 * delivery.DELIVER_BATCH + 2))
    enqueue_changes(Changes(notifications=ids))
    assert [len(batch) for batch in sent] == [delivery.DELIVER_BATCH] * 2 + [1]
    assert tuple(i for batch in sent for i in batch) == ids


def test_the_pump_sends_a_row_whose_job_was_lost(
    redis_delivery: Delivery, district: District, people: dict[str, int]
) -> None:
    engine, server = redis_delivery.engine, redis_delivery.server
    # Written directly, as `closeout sweep` in another shell would: no job at all.
    owed = owe(
        engine,
        stage="spotcheck",
        recipient_id=district.members["M003"],
        data={"text": "丢失的任务"},
    )
    with transaction(engine) as session:
        lost = session.get(Notification, owed)
        assert lost is not None
        lost.created_at = clock.now() - timedelta(seconds=10)
        session.add(lost)
    pump.send()
    wait_until(settled(engine, [owed]), what="the pump's job to send it")
    assert [m.plain_text for m in bot_messages(server, people["M003"])] == ["丢失的任务"]
    assert pump_once(redis_delivery.rt) == 0  # idempotent: nothing left to pump


def test_a_change_edits_the_item_s_card_in_place(
    redis_delivery: Delivery, district: District, people: dict[str, int]
) -> None:
    engine, server = redis_delivery.engine, redis_delivery.server
    number = new_item(engine, district, "B01", "要修改的问题", DUE, "M005")
    [owed] = [r.id for r in rows(engine) if r.recipient_id == district.members["M005"]]
    deliver.send(owed)
    wait_until(settled(engine, [owed]))
    [message] = bot_messages(server, people["M005"])
    assert "待整改" in (message.plain_text or "")

    with transaction(engine) as session:
        act(session, actor_for(session, district.members["M005"]), number, Action.ACKNOWLEDGE)
    refresh_cards.send(number)
    wait_until(lambda: "整改中" in (bot_messages(server, people["M005"])[0].plain_text or ""))
    [edited] = bot_messages(server, people["M005"])
    assert edited.message_id == message.message_id and len(edited.versions) >= 2
    wait_until(lambda: _card_version(engine, people["M005"], message.message_id) == 2)
    assert item(engine, number).version == 2

    # A message the reader deleted: the edit is refused and the card forgotten.
    with transaction(engine) as session:
        act(session, actor_for(session, district.members["M005"]), number, Action.SUBMIT)
    server.fail_next("editMessageText", 400, description="Bad Request: message to edit not found")
    refresh_cards.send(number)
    wait_until(lambda: _card_gone(engine, people["M005"], message.message_id))


def _card_version(engine: Engine, chat_id: int, message_id: int) -> int | None:
    with Session(engine) as session:
        card = session.get(Card, (chat_id, message_id))
        return card.version if card else None


def _card_gone(engine: Engine, chat_id: int, message_id: int) -> bool:
    with Session(engine) as session:
        return session.get(Card, (chat_id, message_id)) is None


def test_the_bot_s_writes_reach_the_chat_within_seconds_without_the_pump(
    redis_delivery: Delivery, district: District, people: dict[str, int]
) -> None:
    engine, server = redis_delivery.engine, redis_delivery.server
    services = Services(engine=engine, settings=redis_delivery.rt.settings, enqueue=enqueue_changes)

    def owe_it(session: Session) -> None:
        notify(
            session, stage="spotcheck", recipient_id=district.members["M003"], data={"text": "即时"}
        )

    asyncio.run(services.db(owe_it))
    message = server.client.wait_for_blocking(people["M003"], "即时", timeout=10)
    assert message.plain_text == "即时"


def test_the_in_process_broker_delivers_too(
    stub_delivery: Delivery, district: District, people: dict[str, int]
) -> None:
    engine = stub_delivery.engine
    owed = owe(
        engine,
        stage="spotcheck",
        recipient_id=district.members["M004"],
        data={"text": {"zh": "中文", "en": "English"}},
    )
    deliver.send(owed)
    wait_until(settled(engine, [owed]))
    assert [m.plain_text for m in bot_messages(stub_delivery.server, people["M004"])] == ["English"]


def test_a_bulletin_s_files_follow_its_text_and_a_retry_sends_only_what_is_missing(
    redis_delivery: Delivery, botapi: BotApiServer
) -> None:
    engine = redis_delivery.engine
    group = botapi.client.group(-1001, "督查工作群")
    with transaction(engine) as session:
        chart = Attachment(
            file_name="chart.png", mime_type="image/png", content=tiny_png(), created_at=clock.now()
        )
        sheet = Attachment(
            file_name="台账.xlsx",
            mime_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            content=b"PK\x03\x04 not really a workbook",
            created_at=clock.now(),
        )
        session.add(chart)
        session.add(sheet)
        session.flush()
        ids = [chart.id, sheet.id]
    owed = owe(
        engine,
        stage="bulletin-weekly",
        chat_id=group.id,
        occurrence="2026-W10",
        data={"text": {"zh": "【督查情况通报】", "en": "[Weekly report]"}, "attachments": ids},
    )
    botapi.fail_next("sendDocument", 502)
    deliver.send(owed)
    wait_until(settled(engine, [owed]), timeout=20)

    sent = row(engine, owed)
    assert sent.status == "sent" and sent.attempts == 1
    text, photo, document = bot_messages(botapi, group.id)
    assert text.plain_text == "【督查情况通报】" and sent.message_id == text.message_id
    assert photo.photo and document.document is not None
    assert document.document.file_name == "台账.xlsx"
    assert botapi.calls["sendMessage"] == 1 and botapi.calls["sendPhoto"] == 1


def test_a_digest_member_gets_an_escalation_at_once_and_the_rest_at_18_00(
    redis_delivery: Delivery,
    district: District,
    people: dict[str, int],
    frozen_clock: clock.FrozenClock,
) -> None:
    engine, server = redis_delivery.engine, redis_delivery.server
    m002 = district.members["M002"]
    with transaction(engine) as session:
        leader = session.get(Member, m002)
        assert leader is not None
        leader.digest = True
        session.add(leader)
    routine = [
        owe(engine, stage="spotcheck", recipient_id=m002, occurrence=n, data={"text": f"例行 {n}"})
        for n in range(2)
    ]
    urgent = owe(engine, stage="escalate-2", recipient_id=m002, data={"text": "约谈函询"})
    for notification_id in [*routine, urgent]:
        deliver.send(notification_id)
    wait_until(settled(engine, [urgent]))
    wait_until(lambda: all(row(engine, r).not_before is not None for r in routine))
    assert [m.plain_text for m in bot_messages(server, people["M002"])] == ["约谈函询"]

    frozen_clock.advance(timedelta(hours=9))  # 18:00 in Beijing: the digest
    assert pump_once(redis_delivery.rt, grace=timedelta(0)) == 2
    wait_until(settled(engine, routine))
    digest = bot_messages(server, people["M002"])[-1].plain_text or ""
    assert digest.startswith("今日汇总（2 条）") and "例行 0" in digest and "例行 1" in digest


def test_the_pump_leaves_late_jobs_alone_while_the_queue_has_a_backlog(
    engine: Engine,
    database_url: str,
    botapi: BotApiServer,
    redis_url: str,
    namespace: str,
    district: District,
    frozen_clock: clock.FrozenClock,
) -> None:
    # No worker: the queue only fills, as in a big fan-out's first minutes.
    rt = load_actors(
        make_settings(database_url, botapi, redis_url), engine=engine, namespace=namespace
    )
    waiting = owe(
        engine, stage="spotcheck", recipient_id=district.members["M003"], data={"text": "a"}
    )
    with transaction(engine) as session:
        mark_enqueued(session, [waiting], now=clock.now())
    deliver.send(waiting)
    frozen_clock.advance(delivery.PUMP_GRACE + timedelta(seconds=1))
    assert queue_backlog(rt.broker, delivery.QUEUE) == 1
    assert pump_once(rt) == 0  # late, not lost: its job is in the queue
    frozen_clock.advance(delivery.PUMP_BUSY_GRACE)
    assert pump_once(rt) == 1  # … unless it is very late
    rt.broker.flush_all()
    assert queue_backlog(rt.broker, delivery.QUEUE) == 0
    frozen_clock.advance(delivery.PUMP_GRACE + timedelta(seconds=1))
    assert pump_once(rt) == 1  # an idle queue: a minute late is lost
    rt.broker.close()
