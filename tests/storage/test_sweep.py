"""SPEC §5's ladder through the sweep, on SQLite and PostgreSQL, day by day over holidays."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import docx
import pytest
from sqlalchemy import Engine, func, update
from sqlmodel import Session, col, select

from models import clock
from models import sweep as sweep_module
from models.audit import verify_chain
from models.db import transaction
from models.holidays import load_calendar
from models.ledger import NewItem, act, create_item, decide_extension, request_extension
from models.notices import DOCX_MIME
from models.people import (
    actor_for,
    inspectors_covering,
    leaders_above,
    leaders_of,
    secretaries_of,
)
from models.summaries import Facts
from models.sweep import SweepReport, _Directory, sweep
from models.tables import Attachment, Event, Item, Notification, Org
from tests.support import District

ZONE = ZoneInfo("Asia/Shanghai")
#: Due on the Thursday before the Labour Day holiday (1–5 May 2026; Saturday 9 May is a workday).
DUE = date(2026, 4, 30)
LADDER = ("remind-3", "remind-1", "overdue", "escalate-1", "escalate-2")


def _morning(frozen: clock.FrozenClock, day: date) -> None:
    frozen.current = datetime.combine(day, time(8, 30), ZONE).astimezone(UTC)


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _sweep(
    engine: Engine, *, dry_run: bool = False, commit_batches: bool = False, batch_size: int = 2
) -> SweepReport:
    with transaction(engine) as session:
        facts = Facts(today=clock.today(ZONE), calendar=load_calendar(session), warn_days=3)
        return sweep(
            session,
            facts,
            remind_days=(3, 1),
            escalate_days=(5, 10),
            dry_run=dry_run,
            on_batch=(lambda _: session.commit()) if commit_batches else None,
            batch_size=batch_size,
        )


def _create(
    engine: Engine,
    district: District,
    *,
    by: str = "M003",
    org: str = "B01",
    responsible: str | None = "M006",
    due: date = DUE,
    title: str = "三会一课记录不全",
    kind: str = "problem",
) -> int:
    with transaction(engine) as session:
        item = create_item(
            session,
            actor_for(session, district.members[by]),
            NewItem(
                kind=kind,
                org_id=district.orgs[org],
                title=title,
                due_date=due,
                responsible_id=district.members[responsible] if responsible else None,
            ),
            today=clock.today(ZONE),
        )
        assert item.number is not None
        return item.number


def _owed(engine: Engine, number: int) -> list[tuple[str, date | None, int | None]]:
    with Session(engine) as session:
        rows = session.exec(
            select(Notification)
            .where(Notification.item_number == number, col(Notification.stage).in_(LADDER))
            .order_by(col(Notification.id))
        ).all()
        return [(row.stage, row.due_date, row.recipient_id) for row in rows]


def _escalations(engine: Engine) -> list[tuple[int | None, int, int]]:
    """(item, level, from) of every "escalate" event, in chain order."""
    with Session(engine) as session:
        rows = session.exec(
            select(Event.item_number, Event.data)
            .where(Event.action == "escalate")
            .order_by(col(Event.seq))
        ).all()
    return [(number, json.loads(data)["level"], json.loads(data)["from"]) for number, data in rows]


def _level_and_version(engine: Engine, number: int) -> tuple[int, int]:
    with Session(engine) as session:
        item = session.get(Item, number)
        assert item is not None
        return item.escalation_level, item.version


def _counts(engine: Engine) -> tuple[int, int, int]:
    with Session(engine) as session:
        return (
            session.exec(select(func.count()).select_from(Notification)).one(),
            session.exec(select(func.count()).select_from(Event)).one(),
            session.exec(select(func.count()).select_from(Attachment)).one(),
        )


def test_the_ladder_climbs_once_per_stage_over_the_labour_day_holiday(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    number = _create(engine, district)
    first_owed: dict[str, date] = {}
    for day in _days(date(2026, 4, 20), date(2026, 5, 25)):
        _morning(frozen_clock, day)
        report = _sweep(engine)
        for stage in report.owed:
            assert stage not in first_owed, f"{stage} owed again on {day}"
            first_owed[stage] = day
        # A second sweep the same day (the 14:00 run) owes nothing new.
        assert _sweep(engine).total_owed == 0
    assert first_owed == {
        "remind-3": date(2026, 4, 27),  # Mon: Tue, Wed, Thu left
        "remind-1": date(2026, 4, 29),  # Wed: only Thu left
        "overdue": date(2026, 5, 1),  # the holiday right after the due date
        "escalate-1": date(2026, 5, 11),  # 6, 7, 8, Sat 9 (make-up workday), 11 May
        "escalate-2": date(2026, 5, 18),  # 12, 13, 14, 15, 18 May
    }
    m = district.members
    assert _owed(engine, number) == [
        ("remind-3", DUE, m["M006"]),
        ("remind-1", DUE, m["M006"]),
        ("overdue", DUE, m["M006"]),
        ("overdue", DUE, m["M005"]),  # the secretary of B01
        ("escalate-1", DUE, m["M005"]),
        ("escalate-1", DUE, m["M003"]),  # the inspector who logged it
        ("escalate-2", DUE, m["M002"]),  # G01 has no leader: C01's
    ]


def test_escalation_level_is_stored_with_an_event_in_the_same_transaction(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    number = _create(engine, district)
    levels = {}
    for day in (date(2026, 5, 8), date(2026, 5, 11), date(2026, 5, 12), date(2026, 5, 18)):
        _morning(frozen_clock, day)
        report = _sweep(engine)
        with Session(engine) as session:
            item = session.get(Item, number)
            assert item is not None
            levels[day] = (item.escalation_level, item.version, report.escalated)
    assert levels == {
        date(2026, 5, 8): (0, 1, []),
        date(2026, 5, 11): (1, 2, [(number, 1)]),
        date(2026, 5, 12): (1, 2, []),
        date(2026, 5, 18): (2, 3, [(number, 2)]),
    }
    with Session(engine) as session:
        events = session.exec(
            select(Event).where(Event.item_number == number, Event.action == "escalate")
        ).all()
        assert [(e.from_status, e.to_status, e.actor_id) for e in events] == [
            ("open", "open", None)
        ] * 2
        assert [json.loads(e.data)["level"] for e in events] == [1, 2]
        assert verify_chain(session).ok


def test_items_rising_in_one_batch_get_one_event_each_and_the_chain_verifies(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    inquiry = [_create(engine, district, title=f"问题{n}") for n in range(3)]
    # Due 8 May: 7 working days overdue on 18 May (Saturday 9 May is a workday).
    talk = [_create(engine, district, title=f"新问题{n}", due=date(2026, 5, 8)) for n in range(2)]
    _morning(frozen_clock, date(2026, 5, 18))
    report = _sweep(engine, batch_size=100)
    assert report.escalated == [(n, 2) for n in inquiry] + [(n, 1) for n in talk]
    assert _escalations(engine) == [(n, 2, 0) for n in inquiry] + [(n, 1, 0) for n in talk]
    assert [_level_and_version(engine, n) for n in inquiry + talk] == [(2, 2)] * 3 + [(1, 2)] * 2
    with Session(engine) as session:
        assert verify_chain(session).ok


def test_an_item_closed_or_moved_after_the_sweep_read_it_is_not_escalated(
    engine: Engine,
    district: District,
    frozen_clock: clock.FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed, moved, kept = (_create(engine, district, title=f"问题{n}") for n in range(3))
    read = sweep_module._load_batch

    def read_then_changed_elsewhere(
        session: Session, numbers: Sequence[int], latest: date
    ) -> list[sweep_module._Candidate]:
        candidates = read(session, numbers, latest)
        connection = session.connection()
        connection.execute(update(Item).where(col(Item.number) == closed).values(status="closed"))
        connection.execute(
            update(Item).where(col(Item.number) == moved).values(due_date=date(2026, 6, 30))
        )
        return candidates

    monkeypatch.setattr(sweep_module, "_load_batch", read_then_changed_elsewhere)
    _morning(frozen_clock, date(2026, 5, 18))
    report = _sweep(engine, batch_size=100)
    assert report.escalated == [(kept, 2)]
    assert _escalations(engine) == [(kept, 2, 0)]
    assert _level_and_version(engine, closed) == (0, 1)
    assert _level_and_version(engine, moved) == (0, 1)


def test_a_second_sweep_escalates_nothing_and_appends_no_event(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    numbers = [_create(engine, district, title=f"问题{n}") for n in range(3)]
    _morning(frozen_clock, date(2026, 5, 18))
    _sweep(engine, batch_size=100)
    before = _counts(engine)
    frozen_clock.advance(timedelta(hours=5, minutes=30))
    assert _sweep(engine, batch_size=100).escalated == []
    assert _counts(engine) == before
    assert [_level_and_version(engine, n) for n in numbers] == [(2, 2)] * 3


def test_notices_drafted_in_one_batch_each_go_with_their_own_unit_s_rows(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    units = {
        _create(engine, district): "B01",
        _create(engine, district, org="B02", responsible="M008"): "B02",
    }
    _morning(frozen_clock, date(2026, 5, 18))
    assert _sweep(engine, batch_size=100).notices == ["B01", "B02"]
    with Session(engine) as session:
        for number, code in units.items():
            [row] = session.exec(
                select(Notification).where(
                    Notification.item_number == number, Notification.stage == "escalate-2"
                )
            ).all()
            [attachment_id] = json.loads(row.data)["attachments"]
            attachment = session.get(Attachment, attachment_id)
            assert attachment is not None
            assert attachment.file_name == f"约谈函询通知书-{code}-20260518.docx"
            [table] = docx.Document(io.BytesIO(attachment.content)).tables
            assert [r.cells[0].text for r in table.rows[1:]] == [f"#{number}"]


def test_an_item_that_missed_days_escalates_straight_to_its_level_once(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    number = _create(engine, district)
    _morning(frozen_clock, date(2026, 5, 20))
    report = _sweep(engine)
    assert report.escalated == [(number, 2)]
    assert [stage for stage, _, _ in _owed(engine, number)] == [
        "overdue",
        "overdue",
        "escalate-1",
        "escalate-1",
        "escalate-2",
    ]
    with Session(engine) as session:
        assert session.exec(select(func.count()).where(Event.action == "escalate")).one() == 1


def test_escalate_1_goes_to_the_covering_inspectors_when_no_inspector_logged_it(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    # A task the secretary set herself: nobody in an inspection group logged it.
    number = _create(engine, district, by="M005", kind="task", responsible="M006")
    # In C02, B04's secretary M011 is an inspector too; leaders above: C02's M012.
    other = _create(engine, district, by="M013", org="B04", responsible=None)
    _morning(frozen_clock, date(2026, 5, 18))
    _sweep(engine)
    m = district.members
    assert [(s, who) for s, _, who in _owed(engine, number) if s.startswith("escalate")] == [
        ("escalate-1", m["M005"]),
        ("escalate-1", m["M003"]),
        ("escalate-1", m["M004"]),
        ("escalate-2", m["M002"]),
    ]
    assert [(s, who) for s, _, who in _owed(engine, other)] == [
        ("overdue", m["M011"]),  # responsible and secretary: told once
        ("escalate-1", m["M011"]),
        ("escalate-1", m["M013"]),
        ("escalate-2", m["M012"]),
    ]


def test_an_approved_extension_restarts_the_ladder_for_the_new_date(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    number = _create(engine, district)
    _morning(frozen_clock, date(2026, 5, 11))
    assert _sweep(engine).escalated == [(number, 1)]
    new_due = date(2026, 5, 29)
    with transaction(engine) as session:
        request_extension(
            session,
            actor_for(session, district.members["M006"]),
            number,
            new_due,
            "等待上级批复",
            today=clock.today(ZONE),
        )
        decide_extension(
            session, actor_for(session, district.members["M003"]), number, approve=True
        )
    first_owed: dict[tuple[str, date], date] = {}
    for day in _days(date(2026, 5, 11), date(2026, 6, 8)):
        _morning(frozen_clock, day)
        for stage in _sweep(engine).owed:
            first_owed[(stage, new_due)] = first_owed.get((stage, new_due), day)
    assert first_owed == {
        ("remind-3", new_due): date(2026, 5, 26),
        ("remind-1", new_due): date(2026, 5, 28),
        ("overdue", new_due): date(2026, 5, 30),
        ("escalate-1", new_due): date(2026, 6, 5),
    }
    with Session(engine) as session:
        item = session.get(Item, number)
        assert item is not None and item.escalation_level == 1 and item.due_date == new_due
        escalations = session.exec(
            select(Event.data).where(Event.item_number == number, Event.action == "escalate")
        ).all()
        assert len(escalations) == 2  # level 1 for the old date, level 1 again for the new
    old = [stage for stage, due, _ in _owed(engine, number) if due == DUE]
    assert old == ["overdue", "overdue", "escalate-1", "escalate-1"]


def test_the_inquiry_notice_lists_every_overdue_item_of_the_unit(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    first = _create(engine, district)
    second = _create(engine, district, title="党费收缴不及时", due=date(2026, 5, 12))
    not_yet = _create(engine, district, title="尚未到期", due=date(2026, 6, 30))
    elsewhere = _create(engine, district, org="B02", responsible="M008", title="其他支部")
    closed = _create(engine, district, title="已经销号")
    with transaction(engine) as session:
        act(session, actor_for(session, district.members["M005"]), closed, "submit")
        act(session, actor_for(session, district.members["M003"]), closed, "verify")
    _morning(frozen_clock, date(2026, 5, 18))
    report = _sweep(engine)
    assert report.notices == ["B01", "B02"]
    with Session(engine) as session:
        [row] = session.exec(
            select(Notification).where(
                Notification.item_number == first, Notification.stage == "escalate-2"
            )
        ).all()
        [attachment_id] = json.loads(row.data)["attachments"]
        attachment = session.get(Attachment, attachment_id)
        assert attachment is not None and attachment.mime_type == DOCX_MIME
        assert attachment.file_name == "约谈函询通知书-B01-20260518.docx"
        document = docx.Document(io.BytesIO(attachment.content))
    text = "\n".join(p.text for p in document.paragraphs)
    assert "约谈函询通知书" in text and "镇机关第一党支部" in text and "城关镇党委" in text
    [table] = document.tables
    rows = [[cell.text for cell in r.cells] for r in table.rows]
    assert rows[0] == ["编号", "事项", "整改时限", "逾期工作日", "责任人"]
    assert rows[1:] == [
        [f"#{first}", "三会一课记录不全", "2026-04-30", "10", "陈党员"],
        [f"#{second}", "党费收缴不及时", "2026-05-12", "4", "陈党员"],
    ]
    assert f"#{not_yet}" not in str(rows) and f"#{elsewhere}" not in str(rows)

    # The 14:00 sweep drafts no second notice for the unit: the leader has the day's.
    with transaction(engine) as session:
        item = session.get(Item, second)
        assert item is not None
        item.due_date = date(2026, 4, 29)
        session.add(item)
    frozen_clock.advance(timedelta(hours=5, minutes=30))
    again = _sweep(engine)
    assert again.notices == [] and again.owed["escalate-2"] == 1
    with Session(engine) as session:
        datas = session.exec(
            select(Notification.item_number, Notification.data)
            .where(Notification.stage == "escalate-2")
            .order_by(col(Notification.id))
        ).all()
        attached = [(n, json.loads(d).get("attachments")) for n, d in datas]
        assert [n for n, files in attached if files] == [first, elsewhere]
        assert attached[-1] == (second, None)
        assert session.exec(select(func.count()).select_from(Attachment)).one() == 2


def test_a_leader_gets_the_unit_s_notice_once_however_many_items_reach_level_2(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    numbers = [_create(engine, district, title=f"问题{n}") for n in range(3)]
    _morning(frozen_clock, date(2026, 5, 18))
    _sweep(engine)
    with Session(engine) as session:
        rows = session.exec(select(Notification).where(Notification.stage == "escalate-2")).all()
    assert sorted(row.item_number for row in rows) == numbers
    files = [json.loads(row.data).get("attachments") for row in rows]
    assert sum(1 for f in files if f) == 1  # one row carries it; the others bundle


def test_a_dry_run_writes_nothing_and_says_what_would_be_owed(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    number = _create(engine, district)
    _morning(frozen_clock, date(2026, 5, 18))
    before = _counts(engine)
    dry = _sweep(engine, dry_run=True)
    assert _counts(engine) == before
    with Session(engine) as session:
        item = session.get(Item, number)
        assert item is not None and (item.escalation_level, item.version) == (0, 1)
    assert dry.dry_run and dry.notification_ids == [] and dry.attachment_ids == []
    assert dict(dry.owed) == {"overdue": 2, "escalate-1": 2, "escalate-2": 1}
    assert dry.escalated == [(number, 2)] and dry.notices == ["B01"]
    real = _sweep(engine)
    assert dict(real.owed) == dict(dry.owed) and real.escalated == dry.escalated
    assert real.notices == dry.notices and len(real.notification_ids) == 5
    assert _sweep(engine, dry_run=True).total_owed == 0


def test_finished_and_undated_items_are_not_chased(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    closed = _create(engine, district)
    with transaction(engine) as session:
        act(session, actor_for(session, district.members["M005"]), closed, "submit")
        act(session, actor_for(session, district.members["M003"]), closed, "verify")
    with transaction(engine) as session:
        create_item(
            session,
            actor_for(session, district.members["M005"]),
            NewItem(kind="responsibility", org_id=district.orgs["B01"], title="主题党日"),
        )
    _morning(frozen_clock, date(2026, 5, 20))
    report = _sweep(engine)
    assert report.candidates == 0 and report.total_owed == 0


def test_batches_committed_by_the_caller_add_up(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    numbers = [_create(engine, district, title=f"问题{n}") for n in range(5)]
    _morning(frozen_clock, date(2026, 5, 11))
    report = _sweep(engine, commit_batches=True)
    assert report.candidates == 5 and report.escalated == [(n, 1) for n in numbers]
    assert report.owed == {"overdue": 10, "escalate-1": 10}
    assert len(report.notification_ids) == 20


def test_bulk_directory_lookups_agree_with_models_people(
    engine: Engine, district: District
) -> None:
    with Session(engine) as session:
        orgs = session.exec(select(Org)).all()
        directory = _Directory(session)
        directory.load([org.id for org in orgs if org.id is not None], district.members.values())
        for org in orgs:
            assert org.id is not None
            heads = secretaries_of(session, org.id) or leaders_of(session, org.id)
            assert directory.unit_heads(org.id) == [m.id for m in heads], org.code
            assert directory.inspectors_covering(org.path) == [
                m.id for m in inspectors_covering(session, org.path)
            ], org.code
            assert directory.leaders_above(org.path)[0] == [
                m.id for m in leaders_above(session, org.path)
            ], org.code
