"""Recurring responsibilities (SPEC §3): theme party day on the first Friday of each month."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from models import clock
from models.audit import verify_chain
from models.db import transaction
from models.ledger import InputRefused, NewItem, act, create_item
from models.people import actor_for
from models.permissions import PermissionRefused
from models.recurrence import check_rrule, occurrences, recur, set_rrule
from models.tables import Event, Item, Notification
from tests.support import District

ZONE = ZoneInfo("Asia/Shanghai")
FIRST_FRIDAY = "FREQ=MONTHLY;BYDAY=1FR"


def _duty(engine: Engine, district: District, *, kind: str = "responsibility") -> int:
    with transaction(engine) as session:
        item = create_item(
            session,
            actor_for(session, district.members["M005"]),
            NewItem(
                kind=kind,
                org_id=district.orgs["B01"],
                title="主题党日",
                description="每月第一个星期五开展主题党日活动",
                responsible_id=district.members["M006"],
            ),
            today=clock.today(ZONE),
        )
        assert item.number is not None
        return item.number


def _set(engine: Engine, district: District, number: int, rule: str | None, by: str = "M005"):  # type: ignore[no-untyped-def]
    with transaction(engine) as session:
        return set_rrule(session, actor_for(session, district.members[by]), number, rule)


def _recur(engine: Engine, language: str = "zh"):  # type: ignore[no-untyped-def]
    with transaction(engine) as session:
        return recur(session, today=clock.today(ZONE), zone=ZONE, language=language)


def _tasks(engine: Engine) -> list[tuple[str, date | None, str | None, str, int | None]]:
    with Session(engine) as session:
        rows = session.exec(
            select(Item).where(Item.kind == "task").order_by(col(Item.due_date))
        ).all()
        return [(i.title, i.due_date, i.external_ref, i.source, i.responsible_id) for i in rows]


def test_theme_party_day_creates_one_task_per_first_friday_once(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    number = _duty(engine, district)
    _set(engine, district, number, "RRULE:freq=monthly;byday=1FR")
    created_on: dict[date, date] = {}
    day = date(2026, 3, 2)
    while day <= date(2026, 5, 31):
        frozen_clock.current = datetime(
            day.year, day.month, day.day, 0, 10, tzinfo=ZONE
        ).astimezone(UTC)
        for _, occurrence, _ in _recur(engine).created:
            assert occurrence not in created_on, f"{occurrence} created twice"
            created_on[occurrence] = day
        assert _recur(engine).created == []  # a second run the same day adds nothing
        day += timedelta(days=1)
    # Each occurrence is created a week ahead (RECUR_AHEAD_DAYS), and only once.
    assert created_on == {
        date(2026, 3, 6): date(2026, 3, 2),
        date(2026, 4, 3): date(2026, 3, 27),
        date(2026, 5, 1): date(2026, 4, 24),  # Labour Day: the rule knows no holidays
        date(2026, 6, 5): date(2026, 5, 29),
    }
    m = district.members["M006"]
    assert _tasks(engine) == [
        ("主题党日（2026-03-06）", date(2026, 3, 6), f"rrule-{number}-20260306", "self_check", m),
        ("主题党日（2026-04-03）", date(2026, 4, 3), f"rrule-{number}-20260403", "self_check", m),
        ("主题党日（2026-05-01）", date(2026, 5, 1), f"rrule-{number}-20260501", "self_check", m),
        ("主题党日（2026-06-05）", date(2026, 6, 5), f"rrule-{number}-20260605", "self_check", m),
    ]
    with Session(engine) as session:
        assert verify_chain(session).ok
        assigned = session.exec(
            select(Notification.recipient_id)
            .join(Item, col(Item.number) == Notification.item_number)
            .where(Item.kind == "task", Notification.stage == "assigned")
        ).all()
        assert sorted(a for a in assigned if a is not None) == sorted(
            [m, district.members["M005"]] * 4
        )


def test_verifying_an_occurrence_leaves_the_responsibility_open(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    number = _duty(engine, district)
    _set(engine, district, number, FIRST_FRIDAY)
    [(_, _, task)] = _recur(engine).created
    with transaction(engine) as session:
        act(session, actor_for(session, district.members["M006"]), task, "submit")
        act(session, actor_for(session, district.members["M003"]), task, "verify")
    with Session(engine) as session:
        duty = session.get(Item, number)
        assert duty is not None and duty.status == "open"


def test_the_rule_counts_from_the_created_date_in_the_deployment_zone(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    # 2026-03-01 20:00 UTC is Monday 2 March, 04:00 in Beijing.
    frozen_clock.current = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
    number = _duty(engine, district)
    _set(engine, district, number, "FREQ=WEEKLY;INTERVAL=2")
    frozen_clock.current = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)
    assert [day for _, day, _ in _recur(engine).created] == [date(2026, 3, 16)]


def test_english_titles_and_long_titles_fit(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    number = _duty(engine, district)
    with transaction(engine) as session:
        duty = session.get(Item, number)
        assert duty is not None
        duty.title = "长" * 200
        session.add(duty)
    _set(engine, district, number, "FREQ=DAILY;COUNT=2")
    _recur(engine, language="en")
    titles = [title for title, *_ in _tasks(engine)]
    assert [len(title) for title in titles] == [200, 200]
    assert titles[0].endswith("… (2026-03-02)") and titles[1].endswith("… (2026-03-03)")


def test_setting_a_rule_is_checked_and_recorded(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    number = _duty(engine, district)
    for bad in ("FREQ=FORTNIGHTLY", "BYDAY=1FR", "FREQ=HOURLY", "FREQ=MONTHLY;BYDAY=9XX", ""):
        with pytest.raises(InputRefused) as refused:
            check_rrule(bad)
        assert refused.value.code == "bad_rrule", bad
    with pytest.raises(InputRefused) as refused:
        _set(engine, district, number, "DTSTART:20260101T000000\nRRULE:FREQ=DAILY")
    assert refused.value.code == "bad_rrule"
    with pytest.raises(PermissionRefused):
        _set(engine, district, number, FIRST_FRIDAY, by="M007")  # another branch's secretary
    problem = _duty(engine, district, kind="commitment")
    with pytest.raises(InputRefused) as refused:
        _set(engine, district, problem, FIRST_FRIDAY)
    assert refused.value.code == "not_a_responsibility"
    with Session(engine) as session:
        item = session.get(Item, number)
        assert item is not None and item.rrule is None and item.version == 1

    item = _set(engine, district, number, " rrule:FREQ=MONTHLY;BYDAY=1FR ")
    assert item.rrule == FIRST_FRIDAY and item.version == 2
    assert _set(engine, district, number, FIRST_FRIDAY).version == 2  # unchanged: no event
    assert _set(engine, district, number, None).rrule is None
    with Session(engine) as session:
        events = session.exec(
            select(Event.action).where(Event.item_number == number).order_by(col(Event.seq))
        ).all()
        assert events == ["create", "set_rrule", "set_rrule"]


def test_occurrences_are_whole_days_in_the_window() -> None:
    assert occurrences(FIRST_FRIDAY, date(2026, 1, 10), date(2026, 1, 1), date(2026, 6, 30)) == [
        date(2026, 2, 6),
        date(2026, 3, 6),
        date(2026, 4, 3),
        date(2026, 5, 1),
        date(2026, 6, 5),
    ]
