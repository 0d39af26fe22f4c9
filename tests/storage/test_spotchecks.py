"""Spot checks (每月随机抽查, 不打招呼) and look-backs (回头看), SPEC §5 and §7,
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from models import clock
from models.clock import FrozenClock
from models.db import transaction
from models.ledger import NewItem, act, create_item
from models.people import actor_for
from models.rankings import POOR, parse_period, unit_outcomes
from models.spotchecks import (
    COMPREHENSIVE,
    LOOKBACK,
    STAGE,
    SpotCheckRefused,
    assign_lookbacks,
    assign_spot_checks,
    assignments_for,
    lookback_of,
    record_lookback,
    sample_units,
    spot_check_candidates,
)
from models.tables import Event, GroupMember, GroupScope, Item, Member, Notification, SpotCheck
from settings import load_settings
from tests.support import District

ZONE = ZoneInfo("Asia/Shanghai")
MARCH = parse_period("2026-03")
#: The district's units: its general branch and branches.
UNITS = {"G01", "B01", "B02", "B03", "B04"}


def _at(frozen: FrozenClock, day: date) -> None:
    """Move the clock to 09:00 Beijing time on `day`."""
    frozen.current = datetime(day.year, day.month, day.day, 1, 0, tzinfo=UTC)


def _new(
    engine: Engine, district: District, org: str, due: date, title: str = "三会一课记录不全"
) -> int:
    with transaction(engine) as session:
        item = create_item(
            session,
            None,
            NewItem(kind="problem", org_id=district.orgs[org], title=title, due_date=due),
        )
        assert item.number is not None
        return item.number


def _do(engine: Engine, district: District, who: str, number: int, action: str) -> None:
    with transaction(engine) as session:
        act(session, actor_for(session, district.members[who]), number, action)


def _close(engine: Engine, district: District, org: str, secretary: str, inspector: str) -> int:
    number = _new(engine, district, org, clock.today(ZONE) + timedelta(days=20))
    _do(engine, district, secretary, number, "submit")
    _do(engine, district, inspector, number, "verify")
    return number


def _assign(engine: Engine, key: str, *, cap: int = 2, seed: int | None = None):  # type: ignore[no-untyped-def]
    period = parse_period(key, "monthly")
    with transaction(engine) as session:
        return assign_spot_checks(
            session, period, today=period.start, zone=ZONE, max_per_year=cap, seed=seed
        )


def _spot_notifications(engine: Engine) -> list[Notification]:
    with Session(engine) as session:
        return list(session.exec(select(Notification).where(Notification.stage == STAGE)).all())


def _codes(engine: Engine, district: District, org_ids: list[int]) -> list[str]:
    by_id = {org_id: code for code, org_id in district.orgs.items()}
    return [by_id[org_id] for org_id in org_ids]


@pytest.mark.parametrize("cap", [1, 2])
def test_no_unit_is_inspected_more_often_than_the_yearly_cap_over_twelve_months(
    engine: Engine, district: District, frozen_clock: FrozenClock, cap: int
) -> None:
    for month in range(1, 13):
        _at(frozen_clock, date(2026, month, 1))
        assignment = _assign(engine, f"2026-{month:02d}", cap=cap)
        assert assignment.new and len(assignment.checks) <= 1  # a fifth of five units
    with Session(engine) as session:
        counts = dict(
            session.exec(
                select(SpotCheck.org_id, func.count())  # type: ignore[call-overload]
                .where(SpotCheck.kind == COMPREHENSIVE)
                .group_by(col(SpotCheck.org_id))
            ).all()
        )
    assert set(_codes(engine, district, list(counts))) == UNITS
    assert all(count <= cap for count in counts.values())
    assert sum(counts.values()) == cap * len(UNITS)
    # The last month found every unit at the cap, and said so.
    assert set(assignment.capped) == UNITS and not assignment.checks
    # A new year starts afresh.
    _at(frozen_clock, date(2027, 1, 1))
    assert len(_assign(engine, "2027-01", cap=cap).checks) == 1


def test_poor_performers_are_chosen_more_often(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    # February: B02 leaves two items overdue; every other unit has nothing against it.
    _at(frozen_clock, date(2026, 2, 2))
    _new(engine, district, "B02", date(2026, 2, 10))
    _new(engine, district, "B02", date(2026, 2, 11))
    _at(frozen_clock, date(2026, 3, 1))
    with Session(engine) as session:
        candidates, uncovered, capped = spot_check_candidates(
            session, MARCH, today=MARCH.start, zone=ZONE, max_per_year=2
        )
    grades = {candidate.code: candidate.grade for candidate in candidates}
    assert grades["B02"] == POOR and not uncovered and not capped
    chosen = Counter(unit.code for seed in range(600) for unit in sample_units(candidates, 1, seed))
    assert set(chosen) == UNITS
    others = [chosen[code] for code in UNITS - {"B02"}]
    # Weights 3 against 2: about 3/11 of the draws against 2/11 each.
    assert chosen["B02"] > max(others)
    assert chosen["B02"] > 1.2 * sum(others) / len(others)


def test_the_same_seed_picks_the_same_sample(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    with Session(engine) as session:
        candidates, _, _ = spot_check_candidates(
            session, MARCH, today=MARCH.start, zone=ZONE, max_per_year=2
        )
    assert sample_units(candidates, 2, 7) == sample_units(list(reversed(candidates)), 2, 7)


def test_only_the_groups_members_are_told_never_the_unit(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    members = district.members
    for month in range(1, 13):
        _at(frozen_clock, date(2026, month, 1))
        _assign(engine, f"2026-{month:02d}")
    with Session(engine) as session:
        checks = {check.id: check for check in session.exec(select(SpotCheck)).all() if check.id}
        group_members = {
            (row.group_id, row.member_id) for row in session.exec(select(GroupMember)).all()
        }
        member_orgs = {m.id: m.org_id for m in session.exec(select(Member)).all()}
    rows = _spot_notifications(engine)
    assert rows
    told: dict[int, set[int]] = {}
    for row in rows:
        assert row.recipient_id is not None and row.chat_id is None
        data = json.loads(row.data)
        assert set(data["text"]) == {"zh", "en"} and "不打招呼" in data["text"]["zh"]
        for check_id in data["checks"]:
            check = checks[check_id]
            assert (check.group_id, row.recipient_id) in group_members
            # Nobody hears of a check of the unit they belong to.
            assert member_orgs[row.recipient_id] != check.org_id
            told.setdefault(check_id, set()).add(row.recipient_id)
    secretaries = {members[code] for code in ("M005", "M007", "M009", "M010")}
    assert not secretaries & {row.recipient_id for row in rows}
    b04 = [check_id for check_id, check in checks.items() if check.org_id == district.orgs["B04"]]
    assert b04, "B04 is inspected twice a year"
    for check_id in b04:
        # GRP2 covers B04: M013 is told; M011, B04's own secretary, is not.
        assert told[check_id] == {members["M013"]}
    # And /spotcheck shows B04's checks to M013 but never to M011.
    with Session(engine) as session:
        period = parse_period(checks[b04[0]].period)
        shown = {
            code: {
                view.check.id
                for view in assignments_for(session, actor_for(session, members[code]), period)
            }
            for code in ("M013", "M011", "M005")
        }
    assert b04[0] in shown["M013"] and b04[0] not in shown["M011"] and not shown["M005"]


def test_rerunning_the_month_writes_nothing_new(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    _at(frozen_clock, date(2026, 1, 5))
    _close(engine, district, "B01", "M005", "M003")
    _at(frozen_clock, date(2026, 3, 1))
    first = _assign(engine, "2026-03")
    with transaction(engine) as session:
        looked = assign_lookbacks(session, MARCH, zone=ZONE)
    counts = (len(_spot_notifications(engine)), _count(engine, SpotCheck))
    assert first.new and looked.new and len(looked.checks) == 1 and counts[1] == 2
    again = _assign(engine, "2026-03")
    with transaction(engine) as session:
        looked_again = assign_lookbacks(session, MARCH, zone=ZONE)
    assert not again.new and not looked_again.new
    assert [c.id for c in again.checks] == [c.id for c in first.checks]
    assert [c.id for c in looked_again.checks] == [c.id for c in looked.checks]
    assert (len(_spot_notifications(engine)), _count(engine, SpotCheck)) == counts


def test_two_comprehensive_checks_of_one_unit_in_one_month_cannot_both_be_written(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    # The writer's lock keeps it from trying; the table refuses whoever does.
    def comprehensive(group: str) -> SpotCheck:
        return SpotCheck(
            kind=COMPREHENSIVE,
            period=MARCH.key,
            org_id=district.orgs["B01"],
            group_id=district.groups[group],
            assigned_at=clock.now(),
        )

    with transaction(engine) as session:
        session.add(comprehensive("GRP1"))
    with pytest.raises(IntegrityError), transaction(engine) as session:
        session.add(comprehensive("GRP2"))
    assert _count(engine, SpotCheck) == 1


def _count(engine: Engine, table: type) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(table)).one()


def test_a_unit_no_group_covers_is_skipped_and_reported(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    with transaction(engine) as session:
        session.execute(
            delete(GroupScope).where(col(GroupScope.group_id) == district.groups["GRP2"])
        )
    for month in range(1, 13):
        _at(frozen_clock, date(2026, month, 1))
        assignment = _assign(engine, f"2026-{month:02d}")
        assert "B04" in assignment.uncovered or "B04" in assignment.capped
        assert district.orgs["B04"] not in {check.org_id for check in assignment.checks}


def test_lookbacks_sample_items_closed_30_to_90_days_before_the_month(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    _at(frozen_clock, date(2025, 11, 20))
    too_old = _close(engine, district, "B01", "M005", "M003")  # 101 days before 1 March
    _at(frozen_clock, date(2026, 1, 10))
    eligible = [_close(engine, district, "B03", "M010", "M003") for _ in range(12)]
    _at(frozen_clock, date(2026, 2, 20))
    too_new = _close(engine, district, "B02", "M007", "M003")  # 9 days before
    _at(frozen_clock, date(2026, 3, 1))
    with transaction(engine) as session:
        looked = assign_lookbacks(session, MARCH, zone=ZONE)
    numbers = [check.item_number for check in looked.checks]
    assert len(numbers) == 2  # a tenth of twelve, rounded up
    assert set(numbers) <= set(eligible) and too_old not in numbers and too_new not in numbers
    assert all(
        check.kind == LOOKBACK and check.group_id == district.groups["GRP1"]
        for check in looked.checks
    )
    # An item looked back once is not looked back again next month.
    with transaction(engine) as session:
        april = assign_lookbacks(session, parse_period("2026-04"), zone=ZONE)
    assert not set(numbers) & {check.item_number for check in april.checks}


def test_a_failed_lookback_reopens_the_item_and_counts_a_relapse_in_the_next_ranking(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    members = district.members
    _at(frozen_clock, date(2026, 1, 12))
    number = _close(engine, district, "B01", "M005", "M003")
    _at(frozen_clock, date(2026, 3, 2))
    with transaction(engine) as session:
        looked = assign_lookbacks(session, MARCH, zone=ZONE)
    check_id = looked.checks[0].id
    assert check_id is not None and looked.checks[0].item_number == number
    with transaction(engine) as session:
        inspector = actor_for(session, members["M004"])
        # Not a member of GRP1's: no such look-back for them.
        with pytest.raises(SpotCheckRefused) as refused:
            lookback_of(session, actor_for(session, members["M013"]), number)
        assert refused.value.code == "no_lookback"
        with pytest.raises(SpotCheckRefused) as refused:
            record_lookback(session, inspector, check_id, False, "  ")
        assert refused.value.code == "finding_required"
    with transaction(engine) as session:
        check = lookback_of(session, actor_for(session, members["M004"]), number)
        assert check.id == check_id
        record_lookback(
            session, actor_for(session, members["M004"]), check_id, False, "制度又未落实"
        )
    with Session(engine) as session:
        item = session.get(Item, number)
        assert item is not None
        assert (item.status, item.relapses, item.closed_at) == ("in_progress", 1, None)
        event = session.exec(
            select(Event).where(Event.item_number == number).order_by(col(Event.seq).desc())
        ).first()
        assert event is not None and event.action == "reopen"
        assert event.actor_id == members["M004"] and event.reason == "制度又未落实"
        assert json.loads(event.data)["spot_check"] == check_id
        reopened = session.exec(
            select(Notification).where(
                Notification.stage == "reopened", Notification.item_number == number
            )
        ).all()
        assert [row.recipient_id for row in reopened] == [members["M005"]]
        stored = session.get(SpotCheck, check_id)
        assert stored is not None and stored.passed is False and stored.done_at is not None
    with transaction(engine) as session:
        with pytest.raises(SpotCheckRefused) as refused:
            record_lookback(session, actor_for(session, members["M003"]), check_id, True, None)
        assert refused.value.code == "lookback_recorded"
    # March's ranking, read on 1 April, counts the relapse against B01.
    with Session(engine) as session:
        outcomes = unit_outcomes(session, MARCH, today=date(2026, 4, 1), zone=ZONE)
    b01 = next(outcome for outcome in outcomes if outcome.code == "B01")
    assert b01.relapses == 1
    assert all(outcome.relapses == 0 for outcome in outcomes if outcome.code != "B01")


def test_a_passed_lookback_leaves_the_item_closed_and_a_member_of_the_unit_cannot_record_it(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    members = district.members
    _at(frozen_clock, date(2026, 1, 12))
    number = _close(engine, district, "B04", "M011", "M013")
    _at(frozen_clock, date(2026, 3, 2))
    with transaction(engine) as session:
        check = assign_lookbacks(session, MARCH, zone=ZONE).checks[0]
    assert check.id is not None and check.group_id == district.groups["GRP2"]
    told = {row.recipient_id for row in _spot_notifications(engine)}
    # M011 sits in GRP2 but is B04's secretary: not told, and may not record it.
    assert told == {members["M013"]}
    with transaction(engine) as session:
        with pytest.raises(SpotCheckRefused) as refused:
            record_lookback(session, actor_for(session, members["M011"]), check.id, True, None)
        assert refused.value.code == "own_unit"
    with transaction(engine) as session:
        record_lookback(session, actor_for(session, members["M013"]), check.id, True, "已整改到位")
    with Session(engine) as session:
        item = session.get(Item, number)
        assert item is not None and item.status == "closed" and item.relapses == 0
        last = session.exec(
            select(Event).where(Event.item_number == number).order_by(col(Event.seq).desc())
        ).first()
        assert last is not None and last.action == "lookback"


def test_the_actors_run_twice_assign_and_owe_once(
    engine: Engine, database_url: str, district: District, frozen_clock: FrozenClock
) -> None:
    import tasks
    from tasks.broker import start_embedded_worker

    _at(frozen_clock, date(2026, 1, 12))
    _close(engine, district, "B01", "M005", "M003")
    _at(frozen_clock, date(2026, 3, 2))
    settings = load_settings(
        DATABASE_URL=database_url, REDIS_URL="", QUIET_HOURS="", TIMEZONE="Asia/Shanghai"
    )
    runtime = tasks.load_actors(settings, engine=engine)
    from tasks.spotchecks import assign_lookbacks as lookbacks_actor
    from tasks.spotchecks import assign_spot_checks as spot_checks_actor

    worker = start_embedded_worker(runtime.broker)
    try:
        for _ in range(2):
            spot_checks_actor.send()
            lookbacks_actor.send("2026-03")
        runtime.broker.join(spot_checks_actor.queue_name)
        worker.join()
    finally:
        worker.stop()
    with Session(engine) as session:
        checks = session.exec(select(SpotCheck)).all()
    assert sorted((check.kind, check.period) for check in checks) == [
        (COMPREHENSIVE, "2026-03"),
        (LOOKBACK, "2026-03"),
    ]
    rows = _spot_notifications(engine)
    assert rows and all(row.key.endswith(":2026-03") for row in rows)
    lookback_told = {row.recipient_id for row in rows if ":lookback:" in row.key}
    assert lookback_told == {district.members["M003"], district.members["M004"]}
