"""The sandbox's demo district: loaded through the real imports, with a ledger whose
dates are working days relative to today, so the lights are the intended ones on
any day — a Monday, a Saturday, inside the Spring Festival holiday, or at the end
of the year with deadlines in a year the holiday data does not cover."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from models import clock
from models.holidays import load_calendar
from models.ladder import due_stages
from models.ledger_import import apply_ledger, read_ledger
from models.roles import ROLES
from models.summaries import Facts, summarize_many
from models.tables import Invite, Item, Member, Milestone, Notification
from models.workdays import WorkCalendar
from sandbox.demo import (
    DATED_LEDGER,
    DEMO_DIR,
    SANDBOX_USER_BASE,
    Cast,
    dated_ledger,
    load_demo,
    working_days_from,
)

ZONE = ZoneInfo("Asia/Shanghai")
#: The light each ledger row is written to show, whatever day the sandbox starts.
INTENDED_LIGHTS = {
    "DC-2026-001": "green",
    "DC-2026-002": "yellow",  # due in 2 working days
    "DC-2026-003": "red",  # 4 working days overdue: level 1 a working day from now
    "DC-2026-004": "red",  # 8 working days overdue: level 1 already
    "DC-2026-005": "green",  # submitted, awaiting verification
    "DC-2026-006": "yellow",  # due tomorrow (a working day)
    "DC-2026-007": None,  # closed off
    "RW-2026-001": "yellow",  # far from due, but behind its roadmap
    "CN-2026-001": "green",
    "ZR-2026-001": "green",
}
#: Days the sandbox may start on: a Monday, a Friday before the Spring Festival, a
#: day inside its holiday, a Saturday, and New Year's Eve (2027 has no holiday data).
START_DAYS = [
    date(2026, 3, 2),
    date(2026, 2, 13),
    date(2026, 2, 18),
    date(2026, 3, 7),
    date(2026, 12, 31),
]


@pytest.fixture
def demo_day(request: pytest.FixtureRequest) -> Iterator[date]:
    """The clock at 10:00 Beijing time on the day the test is given."""
    day: date = request.param
    clock.set_clock(clock.FrozenClock(datetime.combine(day, time(10), tzinfo=ZONE)))
    yield day
    clock.set_clock(None)


def _load(engine: Engine, day: date, tmp_path: Path) -> Cast:
    return load_demo(engine, today=day, out_dir=tmp_path, zone=ZONE)


def _items(engine: Engine) -> dict[str, Item]:
    with Session(engine) as session:
        return {item.external_ref or "": item for item in session.exec(select(Item)).all()}


@pytest.mark.parametrize("demo_day", START_DAYS, indirect=True, ids=str)
def test_the_demo_ledger_shows_the_intended_lights_whatever_day_it_starts(
    engine: Engine, demo_day: date, tmp_path: Path
) -> None:
    _load(engine, demo_day, tmp_path)
    with Session(engine) as session:
        items = list(session.exec(select(Item).order_by(col(Item.number))).all())
        facts = Facts(today=demo_day, calendar=load_calendar(session), warn_days=3)
        summaries = summarize_many(session, items, facts)
    by_ref = {item.external_ref: summary for item, summary in zip(items, summaries, strict=True)}
    assert {ref: summary.light for ref, summary in by_ref.items()} == INTENDED_LIGHTS
    assert by_ref["DC-2026-005"].status == "submitted"
    assert by_ref["DC-2026-007"].status == "closed"
    roadmap = by_ref["RW-2026-001"]
    assert roadmap.days_left is not None and roadmap.days_left > facts.warn_days
    assert (by_ref["DC-2026-003"].days_overdue, by_ref["DC-2026-004"].days_overdue) == (4, 8)


@pytest.mark.parametrize("demo_day", START_DAYS, indirect=True, ids=str)
def test_an_overdue_item_reaches_the_reminder_talk_a_working_day_after_the_start(
    engine: Engine, demo_day: date, tmp_path: Path
) -> None:
    _load(engine, demo_day, tmp_path)
    item = _items(engine)["DC-2026-003"]
    with Session(engine) as session:
        calendar = load_calendar(session)
    tomorrow = calendar.add_workdays(demo_day, 1)
    assert due_stages(item.status, item.due_date, demo_day, calendar) == ["overdue"]
    assert due_stages(item.status, item.due_date, tomorrow, calendar) == ["overdue", "escalate-1"]


@pytest.mark.parametrize("demo_day", [date(2026, 3, 2)], indirect=True, ids=str)
def test_every_role_is_a_bound_sandbox_user_through_an_invite(
    engine: Engine, demo_day: date, tmp_path: Path
) -> None:
    cast = _load(engine, demo_day, tmp_path)
    assert {role for person in cast.people for role in person.roles} == set(ROLES)
    with Session(engine) as session:
        members = list(session.exec(select(Member).order_by(col(Member.code))).all())
        invites = list(session.exec(select(Invite)).all())
    assert [m.telegram_user_id for m in members] == [
        SANDBOX_USER_BASE + position for position in range(1, len(members) + 1)
    ]
    assert all(m.chat_id == m.telegram_user_id and m.bound_at for m in members)
    assert len(invites) == len(members) and all(invite.used_at for invite in invites)
    # The page lists who logs findings first, the operator last.
    assert [person.role for person in cast.people][0] == "inspector"
    assert cast.people[-1].role == "admin"
    assert {p.user_id for p in cast.people} == {m.telegram_user_id for m in members}


@pytest.mark.parametrize("demo_day", [date(2026, 3, 2)], indirect=True, ids=str)
def test_the_work_chat_receives_every_bulletin_of_its_committee(
    engine: Engine, demo_day: date, tmp_path: Path
) -> None:
    cast = _load(engine, demo_day, tmp_path)
    (group,) = cast.groups
    assert group.chat_id < 0 and group.scope_code == "C01"
    assert {cast.person(code).role for code in group.member_codes} == {"inspector", "leader"}
    assert cast.bulletin_chats() == ",".join(
        f"{kind}:{group.chat_id}:C01" for kind in ("daily", "weekly", "monthly", "quarterly")
    )


@pytest.mark.parametrize("demo_day", [date(2026, 3, 2)], indirect=True, ids=str)
def test_the_dated_ledger_is_a_real_ledger_and_a_second_import_changes_nothing(
    engine: Engine, demo_day: date, tmp_path: Path
) -> None:
    _load(engine, demo_day, tmp_path)
    written = tmp_path / DATED_LEDGER
    text = written.read_text(encoding="utf-8-sig")
    assert "T+" not in text and "T-" not in text and "2026-03-04" in text
    with Session(engine) as session:
        changes = apply_ledger(session, read_ledger(written, session=session, zone=ZONE))
        assert changes.total == 0 and changes.unchanged == len(INTENDED_LIGHTS)
        session.rollback()


@pytest.mark.parametrize("demo_day", [date(2026, 3, 2)], indirect=True, ids=str)
def test_the_import_owes_the_assignments_and_the_roadmap_is_planned_by_the_responsible(
    engine: Engine, demo_day: date, tmp_path: Path
) -> None:
    _load(engine, demo_day, tmp_path)
    items = _items(engine)
    with Session(engine) as session:
        assigned = session.exec(
            select(Notification.item_number).where(Notification.stage == "assigned")
        ).all()
        steps = session.exec(
            select(Milestone).where(Milestone.item_number == items["RW-2026-001"].number)
        ).all()
    unfinished = {i.number for i in items.values() if i.status not in ("closed", "cancelled")}
    assert set(assigned) == unfinished
    assert [(s.title, s.done_at is not None) for s in steps] == [
        ("制定标准化建设方案", True),
        ("完成支部自查", False),
        ("整改验收", False),
    ]
    assert steps[1].due_date < demo_day < steps[2].due_date


def test_relative_dates_count_working_days_both_ways() -> None:
    calendar = WorkCalendar()
    saturday = date(2026, 3, 7)
    assert working_days_from(saturday, 1, calendar) == date(2026, 3, 9)  # Monday
    assert working_days_from(saturday, -1, calendar) == date(2026, 3, 5)  # Thursday
    assert working_days_from(saturday, 0, calendar) == saturday
    for offset in (-9, -4, -1):
        due = working_days_from(saturday, offset, calendar)
        assert calendar.workdays_between(due, saturday) == -offset
    # Across the Spring Festival holiday (15–23 February 2026; Saturday the 14th is worked).
    assert working_days_from(date(2026, 2, 24), -2, calendar) == date(2026, 2, 13)
    assert working_days_from(date(2026, 2, 13), 2, calendar) == date(2026, 2, 24)


def test_the_dated_ledger_resolves_only_the_date_columns() -> None:
    calendar, monday = WorkCalendar(), date(2026, 3, 2)
    text = dated_ledger(DEMO_DIR / "ledger.csv", monday, calendar)
    header, first = text.splitlines()[:2]
    assert header.startswith("类型,组织编码,标题")
    found, due = (date.fromisoformat(cell) for cell in first.split(",")[7:9])  # T-15, T+10
    assert calendar.workdays_between(found, monday) == 15  # across the Spring Festival
    assert due == date(2026, 3, 16)
    assert first.endswith(",整改中,DC-2026-001")
