"""Which rows go together and what the message says (SPEC §5 "bundled into one
message", §7), on SQLite and PostgreSQL; no worker, no Bot API."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from bot.services import Services
from models import clock
from models.db import transaction
from models.delivery import (
    MEMBER_LOCK,
    Changes,
    Claimed,
    Gone,
    Later,
    Rules,
    Undeliverable,
    claim,
    claim_many,
    lost_rows,
    mark_enqueued,
    mark_sent,
    recipient_of,
)
from models.holidays import load_calendar
from models.ledger import act
from models.outbox import notify
from models.people import actor_for
from models.states import Action
from models.summaries import Facts
from models.tables import Member, Notification
from settings import QuietHours, load_settings
from tasks.rendering import render, render_many
from tests.support import District
from tests.tasks.support import new_item, owe, row, rows

BEIJING = ZoneInfo("Asia/Shanghai")
DAYTIME = Rules(zone=BEIJING, quiet=None, language="zh")
LEASE = timedelta(seconds=30)
DUE = date(2026, 3, 20)


def _claim(engine: Engine, notification_id: int, rules: Rules = DAYTIME, bundle_max: int = 10):
    with transaction(engine) as session:
        return claim(session, notification_id, rules=rules, bundle_max=bundle_max, lease=LEASE)


def _bind_all(engine: Engine, district: District) -> None:
    with transaction(engine) as session:
        for member_id in district.members.values():
            member = session.get(Member, member_id)
            assert member is not None
            member.chat_id = member.telegram_user_id = 30_000 + member_id
            session.add(member)


def _facts(session: Session) -> Facts:
    return Facts(today=clock.today(BEIJING), calendar=load_calendar(session), warn_days=3)


def test_a_member_s_due_rows_are_claimed_together_own_row_first(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    _bind_all(engine, district)
    first = new_item(engine, district, "B01", "问题一", DUE, "M005")
    new_item(engine, district, "B01", "问题二", DUE, "M005")
    new_item(engine, district, "B02", "别人的问题", DUE, "M007")
    m005 = [r.id for r in rows(engine) if r.recipient_id == district.members["M005"]]
    assert len(m005) == 2

    outcome = _claim(engine, m005[1])
    assert isinstance(outcome, Claimed)
    assert outcome.ids == [m005[1], m005[0]]
    assert outcome.until == clock.now() + LEASE
    assert all(r.not_before == outcome.until for r in rows(engine, m005))
    # A second job for either row finds it claimed: nothing to send.
    again = _claim(engine, m005[0])
    assert isinstance(again, Later) and again.at == outcome.until and not again.deferred
    assert first is not None


def test_bundles_stop_at_bundle_max(engine: Engine, district: District) -> None:
    _bind_all(engine, district)
    ids = [
        owe(
            engine,
            stage="spotcheck",
            recipient_id=district.members["M003"],
            occurrence=n,
            data={"text": f"抽查 {n}"},
        )
        for n in range(5)
    ]
    outcome = _claim(engine, ids[0], bundle_max=3)
    assert isinstance(outcome, Claimed) and outcome.ids == ids[:3]


def test_a_row_with_files_goes_alone(engine: Engine, district: District) -> None:
    _bind_all(engine, district)
    member = district.members["M002"]
    plain = owe(engine, stage="spotcheck", recipient_id=member, data={"text": "a"})
    files = owe(
        engine, stage="escalate-2", recipient_id=member, occurrence=1, data={"attachments": [1]}
    )
    outcome = _claim(engine, files)
    assert isinstance(outcome, Claimed) and outcome.ids == [files]
    # The lease counts one call for the text and one per file.
    assert outcome.until == row(engine, files).not_before
    alone = _claim(engine, plain)
    assert isinstance(alone, Claimed) and alone.ids == [plain]


def test_a_digest_member_s_non_urgent_rows_wait_for_18_00_and_urgent_ones_go(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    _bind_all(engine, district)
    m005 = district.members["M005"]
    with transaction(engine) as session:
        member = session.get(Member, m005)
        assert member is not None
        member.digest = True
        session.add(member)
    reminder = owe(
        engine, stage="remind-3", item_number=None, recipient_id=m005, data={"text": "r"}
    )
    urgent = owe(engine, stage="rejected", recipient_id=m005, occurrence=1, data={"text": "u"})

    deferred = _claim(engine, reminder)
    six_pm = datetime.combine(date(2026, 3, 2), time(18), BEIJING)
    assert isinstance(deferred, Later) and deferred.deferred and deferred.at == six_pm
    now = _claim(engine, urgent)
    assert isinstance(now, Claimed) and now.ids == [urgent]  # the reminder is not bundled in

    frozen_clock.advance(timedelta(hours=9))  # 18:00
    with transaction(engine) as session:
        session.get(Notification, urgent).status = "sent"  # type: ignore[union-attr]
    at_six = _claim(engine, reminder)
    assert isinstance(at_six, Claimed) and at_six.ids == [reminder]


def test_quiet_hours_defer_the_row_to_their_end(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    _bind_all(engine, district)
    frozen_clock.advance(timedelta(hours=14))  # 23:00 Beijing
    owed = owe(engine, stage="assigned", recipient_id=district.members["M005"], data={})
    night = Rules(zone=BEIJING, quiet=QuietHours(time(22), time(7, 30)), language="zh")
    outcome = _claim(engine, owed, night)
    morning = datetime.combine(date(2026, 3, 3), time(7, 30), BEIJING)
    assert isinstance(outcome, Later) and outcome.deferred and outcome.at == morning
    assert row(engine, owed).not_before == morning and row(engine, owed).status == "pending"


def test_an_unbound_member_s_row_fails_visibly(engine: Engine, district: District) -> None:
    owed = owe(engine, stage="assigned", recipient_id=district.members["M006"], data={})
    outcome = _claim(engine, owed)
    assert isinstance(outcome, Undeliverable) and "unbound" in outcome.reason
    failed = row(engine, owed)
    assert failed.status == "failed" and "unbound" in (failed.last_error or "")
    assert isinstance(_claim(engine, owed), Gone)


# The recipient's claim lock is PostgreSQL's advisory lock; SQLite serialises claims.
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_job_whose_row_a_bundle_sent_ends_without_waiting_for_the_member_s_claims(
    engine: Engine, district: District
) -> None:
    # A fan-out leaves most jobs idle (their rows went in another job's bundle):
    # they must not queue behind the member's claim lock.
    _bind_all(engine, district)
    new_item(engine, district, "B01", "问题一", DUE, "M005")
    [owed] = [r.id for r in rows(engine) if r.recipient_id == district.members["M005"]]
    with transaction(engine) as session:
        mark_sent(session, [owed], message_id=1, now=clock.now())
    with engine.connect() as holder:
        holder.execute(
            text("SELECT pg_advisory_xact_lock(:key, :member)"),
            {"key": MEMBER_LOCK, "member": district.members["M005"]},
        )
        with transaction(engine) as session:
            session.execute(text("SET LOCAL lock_timeout = '2s'"))
            outcome = claim(session, owed, rules=DAYTIME, bundle_max=10, lease=LEASE)
        holder.rollback()
    assert isinstance(outcome, Gone)


def test_one_claim_for_many_members_takes_each_one_s_due_rows_for_one_message(
    engine: Engine, district: District
) -> None:
    # A fan-out's job is given a chunk of rows: one message per member, each
    # bundling that member's rows, whichever of them the job was given.
    _bind_all(engine, district)
    for code in ("M003", "M005", "M007"):
        for n in range(2):
            new_item(engine, district, "B01", f"{code} 问题{n}", DUE, code)
    mine = {
        code: [r.id for r in rows(engine) if r.recipient_id == district.members[code]]
        for code in ("M003", "M005", "M007")
    }
    given = [mine["M003"][0], mine["M005"][1], mine["M007"][0], mine["M007"][1]]
    with transaction(engine) as session:
        outcomes = claim_many(session, given, rules=DAYTIME, bundle_max=10, lease=LEASE)
    claimed = {own: outcome for own, outcome in outcomes if isinstance(outcome, Claimed)}
    assert sorted(claimed) == sorted([mine["M003"][0], mine["M005"][1], mine["M007"][0]])
    for code, ids in mine.items():
        [outcome] = [c for c in claimed.values() if c.recipient.member_id == district.members[code]]
        assert sorted(outcome.ids) == sorted(ids)


def test_a_claim_for_many_reports_sent_rows_gone_and_a_busy_chat_later(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    _bind_all(engine, district)
    m003, m005 = (
        owe(engine, stage="spotcheck", recipient_id=district.members[code], data={"text": "抽查"})
        for code in ("M003", "M005")
    )
    with transaction(engine) as session:
        mark_sent(session, [m003], message_id=1, now=clock.now())
    busy_chat = 30_000 + district.members["M005"]
    with transaction(engine) as session:
        outcomes = dict(
            claim_many(
                session,
                [m003, m005],
                rules=DAYTIME,
                bundle_max=10,
                lease=LEASE,
                busy=lambda chats: [0.8 if chat == busy_chat else 0.0 for chat in chats],
            )
        )
    assert outcomes[m003] == Gone("sent")
    later = outcomes[m005]
    assert isinstance(later, Later) and later.deferred
    assert later.at == clock.now() + timedelta(seconds=0.8)
    assert row(engine, m005).not_before is None  # left as it was


def test_a_batch_renders_each_member_s_message_as_it_would_alone(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    # One set of queries for many readers: each still gets their own language,
    # bundle and buttons (the actions *they* may take).
    _bind_all(engine, district)
    new_item(engine, district, "C01", "问题一", DUE, "M004")  # M004 reads English
    new_item(engine, district, "B01", "问题二", DUE, "M005")
    new_item(engine, district, "B01", "问题三", DUE, "M005")
    owe(engine, stage="spotcheck", recipient_id=district.members["M003"], data={"text": "抽查"})
    owed = rows(engine)
    with Session(engine) as session:
        facts = _facts(session)
        messages = []
        for code in ("M003", "M004", "M005"):
            mine = [r for r in owed if r.recipient_id == district.members[code]]
            messages.append((mine, recipient_of(session, mine[0], "zh")))
        together = render_many(session, messages, facts)
        alone = [render(session, mine, recipient, facts) for mine, recipient in messages]
    assert together == alone
    assert len({push.text for push in together}) == 3


def test_one_item_is_its_card_with_what_happened_in_the_reader_s_language(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    _bind_all(engine, district)
    number = new_item(engine, district, "C01", "督查发现的问题", DUE, "M004")  # M004 reads English
    [owed] = [r for r in rows(engine) if r.recipient_id == district.members["M004"]]
    with Session(engine) as session:
        recipient = recipient_of(session, owed, "zh")
        push = render(session, [owed], recipient, _facts(session))
    assert push.text is not None
    assert push.text.startswith("New item for you") and f"#{number}" in push.text
    assert push.card == (number, 1) and push.included == (owed.id,)
    labels = [b["text"] for r in push.reply_markup["inline_keyboard"] for b in r]  # type: ignore[index]
    assert "Acknowledge" in labels and "Details" in labels


def test_several_items_for_one_person_are_one_message_with_a_button_each(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    _bind_all(engine, district)
    numbers = [new_item(engine, district, "B01", f"问题{n}", DUE, "M005") for n in range(3)]
    spot = owe(
        engine,
        stage="spotcheck",
        recipient_id=district.members["M005"],
        data={"text": {"zh": "本月抽查", "en": "Spot checks"}},
    )
    owed = [r for r in rows(engine) if r.recipient_id == district.members["M005"]]
    with Session(engine) as session:
        recipient = recipient_of(session, owed[0], "zh")
        push = render(session, owed, recipient, _facts(session))
    assert push.text is not None and push.card is None
    assert push.text.startswith("您有 4 条提醒")
    for number in numbers:
        assert f"#{number}" in push.text
    assert "本月抽查" in push.text and push.text.count("新交办事项") == 3
    buttons = [b["text"] for r in push.reply_markup["inline_keyboard"] for b in r]  # type: ignore[index]
    assert buttons == [f"#{n} 详情" for n in numbers]
    assert sorted(push.included) == sorted(r.id for r in owed) and spot


def test_a_bundle_never_passes_4096_characters_what_does_not_fit_waits(
    engine: Engine, district: District
) -> None:
    _bind_all(engine, district)
    member = district.members["M003"]
    for n in range(4):
        owe(
            engine, stage="spotcheck", recipient_id=member, occurrence=n, data={"text": "长" * 1500}
        )
    owed = rows(engine)
    with Session(engine) as session:
        push = render(session, owed, recipient_of(session, owed[0], "zh"), _facts(session))
    assert push.text is not None and len(push.text) <= 4096
    assert len(push.included) == 2 and len(push.left_out) == 2
    assert push.text.startswith("您有 2 条提醒")


def test_the_bot_s_transactions_hand_what_they_owed_to_the_queue_after_commit(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    _bind_all(engine, district)
    handed: list[Changes] = []
    services = Services(engine=engine, settings=load_settings(), enqueue=handed.append)
    number = new_item(engine, district, "B01", "问题", DUE, "M005")
    before = {r.id for r in rows(engine)}

    def acknowledge(session: Session) -> None:
        act(session, actor_for(session, district.members["M005"]), number, Action.ACKNOWLEDGE)

    def reject_nothing(session: Session) -> None:
        session.get(Member, district.members["M005"])

    asyncio.run(services.db(acknowledge))
    asyncio.run(services.db(reject_nothing))
    assert handed == [Changes(notifications=(), items=(number,))]

    def owe_one(session: Session) -> None:
        notify(
            session, stage="spotcheck", recipient_id=district.members["M003"], data={"text": "x"}
        )

    frozen_clock.advance(timedelta(seconds=1))  # the item's own rows are older
    asyncio.run(services.db(owe_one))
    [new] = [r for r in rows(engine) if r.id not in before]
    assert handed[-1] == Changes(notifications=(new.id,), items=())
    assert new.enqueued_at == clock.now()  # so the pump leaves it to its job


def test_the_pump_finds_rows_never_enqueued_and_rows_whose_job_is_late(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    member = district.members["M003"]
    fresh = owe(engine, stage="spotcheck", recipient_id=member, occurrence=1, data={"text": "a"})
    queued = owe(engine, stage="spotcheck", recipient_id=member, occurrence=2, data={"text": "b"})
    later = owe(engine, stage="spotcheck", recipient_id=member, occurrence=3, data={"text": "c"})
    with transaction(engine) as session:
        mark_enqueued(session, [queued, later], now=clock.now())
        session.get(Notification, later).not_before = clock.now() + timedelta(hours=1)  # type: ignore[union-attr]

    def lost() -> list[int]:
        with Session(engine) as session:
            return lost_rows(
                session,
                now=clock.now(),
                grace=timedelta(seconds=60),
                fresh_grace=timedelta(seconds=5),
                limit=100,
            )

    assert lost() == []  # the writer has a few seconds to enqueue
    frozen_clock.advance(timedelta(seconds=6))
    assert lost() == [fresh]
    frozen_clock.advance(timedelta(seconds=60))
    assert lost() == [fresh, queued]  # its job is a minute late
    frozen_clock.advance(timedelta(hours=1))
    assert lost() == [fresh, queued, later]
