"""SPEC §4's read side as queries: /my, /item, /ledger, /overdue, /lists, within scope."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, event
from sqlmodel import Session, col, select

from models.clock import FrozenClock
from models.db import transaction
from models.holidays import load_calendar
from models.ledger import (
    InputRefused,
    NewItem,
    act,
    add_milestone,
    create_item,
    request_extension,
)
from models.people import actor_for
from models.permissions import PermissionRefused
from models.queries import (
    item_details,
    ledger_counts,
    lists_org,
    lists_org_by_id,
    my_items,
    org_scope,
    overdue_items,
    reader_scope,
    three_lists,
    visible_item,
)
from models.summaries import Facts
from models.tables import Milestone, Org
from tests.support import District

ZONE = ZoneInfo("Asia/Shanghai")
#: The frozen clock's day, a Monday.
TODAY = date(2026, 3, 2)


def _facts(session: Session) -> Facts:
    return Facts(today=TODAY, calendar=load_calendar(session), warn_days=3)


def _new(
    engine: Engine,
    district: District,
    org: str,
    due: date | None,
    *,
    by: str | None = "M003",
    kind: str = "problem",
    title: str = "三会一课记录不全",
    status: str = "open",
    responsible: str | None = None,
) -> int:
    """An item logged by `by` (None: imported, so past due dates and any status are allowed)."""
    with transaction(engine) as session:
        actor = actor_for(session, district.members[by]) if by else None
        item = create_item(
            session,
            actor,
            NewItem(
                kind=kind,
                org_id=district.orgs[org],
                title=title,
                due_date=due,
                responsible_id=district.members[responsible] if responsible else None,
            ),
            today=TODAY,
            status=status,
        )
        assert item.number is not None
        return item.number


def _do(engine: Engine, district: District, who: str, number: int, action: str) -> None:
    with transaction(engine) as session:
        reason = "整改不到位" if action in ("reject", "cancel", "reopen") else None
        act(session, actor_for(session, district.members[who]), number, action, reason=reason)


def _mine(engine: Engine, district: District, who: str, per_page: int = 50) -> list[int]:
    with Session(engine) as session:
        found = my_items(session, actor_for(session, district.members[who]), per_page=per_page)
        return [item.number for item in found.items if item.number is not None]


def test_my_items_come_most_urgent_first_and_undated_ones_last(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    later = _new(engine, district, "B01", date(2026, 3, 20))
    undated = _new(engine, district, "B01", None)
    soon = _new(engine, district, "B01", date(2026, 3, 5))
    overdue = _new(engine, district, "B01", date(2026, 2, 20), by=None)
    tomorrow = _new(engine, district, "B01", date(2026, 3, 3))
    closed = _new(engine, district, "B01", date(2026, 3, 4), by=None, status="closed")
    elsewhere = _new(engine, district, "B02", date(2026, 3, 3))
    mine = _mine(engine, district, "M005")
    assert mine == [overdue, tomorrow, soon, later, undated]
    assert closed not in mine and elsewhere not in mine


def test_an_inspector_waits_for_submissions_of_the_scope_but_not_their_own(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    number = _new(engine, district, "B01", date(2026, 3, 20))
    _do(engine, district, "M005", number, "submit")
    assert number in _mine(engine, district, "M003")
    assert number not in _mine(engine, district, "M013")  # GRP2 covers C02 only
    # M011 is secretary of B04 and an inspector of GRP2, which covers B04.
    own = _new(engine, district, "B04", date(2026, 3, 20), by="M013", responsible="M013")
    _do(engine, district, "M011", own, "submit")
    assert own not in _mine(engine, district, "M011")
    assert own in _mine(engine, district, "M013")
    assert number in _mine(engine, district, "M004")


def test_approvers_see_the_extensions_waiting_for_their_decision(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    number = _new(engine, district, "B01", date(2026, 3, 20))
    quiet = _new(engine, district, "B01", date(2026, 3, 20))
    with transaction(engine) as session:
        request_extension(
            session,
            actor_for(session, district.members["M005"]),
            number,
            date(2026, 4, 10),
            "汛期施工受阻",
            today=TODAY,
        )
    for approver in ("M003", "M002"):
        mine = _mine(engine, district, approver)
        assert number in mine and quiet not in mine
    assert number not in _mine(engine, district, "M007")
    assert number not in _mine(engine, district, "M012")  # a leader of the other committee


def test_overdue_items_stay_in_scope_most_overdue_first(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    recent = _new(engine, district, "B01", date(2026, 2, 26), by=None)
    oldest = _new(engine, district, "B01", date(2026, 2, 10), by=None)
    other = _new(engine, district, "B04", date(2026, 2, 15), by=None)
    _new(engine, district, "B01", date(2026, 2, 5), by=None, status="closed")
    _new(engine, district, "B01", TODAY, by=None)  # due today is not overdue
    with Session(engine) as session:
        scope = reader_scope(actor_for(session, district.members["M005"]))
        found = overdue_items(session, today=TODAY, scope=scope)
        assert [item.number for item in found.items] == [oldest, recent]
        everything = overdue_items(session, today=TODAY, scope=None)
        assert [item.number for item in everything.items] == [oldest, other, recent]


def test_a_plain_member_has_no_ledger_scope(engine: Engine, district: District) -> None:
    with Session(engine) as session:
        with pytest.raises(PermissionRefused) as refused:
            reader_scope(actor_for(session, district.members["M006"]))
        assert refused.value.code == "role_required"
        assert reader_scope(actor_for(session, district.members["M001"])) is None


def test_ledger_counts_statuses_lights_and_a_roadmap_behind_item(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    _new(engine, district, "B01", date(2026, 3, 31))  # green
    behind = _new(engine, district, "B01", date(2026, 3, 31))  # yellow: a step is late
    with transaction(engine) as session:
        add_milestone(
            session,
            actor_for(session, district.members["M005"]),
            behind,
            "制定整改方案",
            date(2026, 2, 27),
        )
    soon = _new(engine, district, "B01", date(2026, 3, 4))  # yellow: 2 working days left
    _do(engine, district, "M005", soon, "acknowledge")
    _new(engine, district, "B01", date(2026, 2, 20), by=None)  # red
    on_time = _new(engine, district, "B01", date(2026, 3, 20))
    _do(engine, district, "M005", on_time, "submit")
    _do(engine, district, "M003", on_time, "verify")
    submitted = _new(engine, district, "B01", date(2026, 3, 20))
    _do(engine, district, "M005", submitted, "submit")
    cancelled = _new(engine, district, "B01", date(2026, 3, 20))
    _do(engine, district, "M002", cancelled, "cancel")
    _new(engine, district, "B04", date(2026, 2, 20), by=None)  # another committee's, red
    with Session(engine) as session:
        facts = _facts(session)
        scope = reader_scope(actor_for(session, district.members["M005"]))
        counts = ledger_counts(session, scope=scope, facts=facts, zone=ZONE)
        everything = ledger_counts(session, scope=None, facts=facts, zone=ZONE)
    assert counts.by_status == {
        "open": 2,
        "in_progress": 2,
        "submitted": 1,
        "closed": 1,
        "cancelled": 1,
    }
    assert counts.total == 7
    # The submitted item is due 2026-03-20 with nothing late: green.
    assert dict(counts.by_light) == {"red": 1, "yellow": 2, "green": 2}
    assert counts.overdue == 1
    assert (counts.closed_on_time, counts.closed_with_due, counts.on_time_rate) == (1, 1, 1.0)
    assert everything.total == 8 and everything.by_light["red"] == 2 and everything.overdue == 2


def test_a_done_step_or_a_finished_item_is_not_behind_its_roadmap(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    done_step = _new(engine, district, "B01", date(2026, 3, 31))
    closed = _new(engine, district, "B01", date(2026, 3, 31))
    with transaction(engine) as session:
        secretary = actor_for(session, district.members["M005"])
        for number in (done_step, closed):
            add_milestone(session, secretary, number, "制定整改方案", date(2026, 2, 27))
    with transaction(engine) as session:
        for step in session.exec(select(Milestone).where(Milestone.item_number == done_step)):
            step.done_at = frozen_clock()
            session.add(step)
    _do(engine, district, "M005", closed, "submit")
    _do(engine, district, "M003", closed, "verify")
    with Session(engine) as session:
        counts = ledger_counts(session, scope=None, facts=_facts(session), zone=ZONE)
    assert dict(counts.by_light) == {"red": 0, "yellow": 0, "green": 1}


def test_a_scope_of_two_subtrees_counts_both_and_an_empty_scope_nothing(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    _new(engine, district, "B01", date(2026, 2, 20), by=None)  # red
    _new(engine, district, "B04", date(2026, 3, 31), by=None)  # green
    _new(engine, district, "B02", date(2026, 3, 31), by=None)  # outside both
    with Session(engine) as session:
        paths = tuple(session.exec(select(Org.path).where(col(Org.code).in_(["B01", "B04"]))).all())
        both = ledger_counts(session, scope=paths, facts=_facts(session), zone=ZONE)
        nothing = ledger_counts(session, scope=(), facts=_facts(session), zone=ZONE)
    assert (both.total, dict(both.by_light), both.overdue) == (
        2,
        {"red": 1, "yellow": 0, "green": 1},
        1,
    )
    assert (nothing.total, nothing.overdue, nothing.on_time_rate) == (0, 0, None)


def test_the_on_time_rate_counts_the_closing_day_in_local_time(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    with Session(engine) as session:
        empty = ledger_counts(session, scope=None, facts=_facts(session), zone=ZONE)
    assert empty.on_time_rate is None and empty.closed_with_due == 0
    due_today = [_new(engine, district, "B01", TODAY) for _ in range(2)]
    undated = _new(engine, district, "B01", None)
    for number in (*due_today, undated):
        _do(engine, district, "M005", number, "submit")
    # 23:30 in Beijing on the due day: on time.
    frozen_clock.advance(timedelta(hours=14, minutes=30))
    _do(engine, district, "M003", due_today[0], "verify")
    _do(engine, district, "M003", undated, "verify")
    # 00:30 the next day in Beijing (still 2026-03-02 in UTC): late.
    frozen_clock.advance(timedelta(hours=1))
    _do(engine, district, "M003", due_today[1], "verify")
    with Session(engine) as session:
        counts = ledger_counts(session, scope=None, facts=_facts(session), zone=ZONE)
    assert counts.by_status["closed"] == 3
    # The undated item counts neither way.
    assert (counts.closed_on_time, counts.closed_with_due) == (1, 2)
    assert counts.on_time_rate == 0.5


def test_an_item_outside_the_scope_reads_like_a_missing_one(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    number = _new(engine, district, "B01", date(2026, 3, 20))
    with Session(engine) as session:
        stranger = actor_for(session, district.members["M007"])
        with pytest.raises(InputRefused) as hidden:
            visible_item(session, stranger, number)
        with pytest.raises(InputRefused) as missing:
            visible_item(session, stranger, 9999)
        assert hidden.value.code == missing.value.code == "unknown_item"
        assert hidden.value.params == {"number": number}
        assert visible_item(session, actor_for(session, district.members["M005"]), number)


def test_item_details_show_roadmap_history_and_the_readers_actions(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    number = _new(engine, district, "B01", date(2026, 3, 20))
    with transaction(engine) as session:
        add_milestone(
            session, actor_for(session, district.members["M005"]), number, "整改", date(2026, 3, 9)
        )
    _do(engine, district, "M005", number, "submit")
    _do(engine, district, "M003", number, "reject")
    with Session(engine) as session:
        facts = _facts(session)
        details = item_details(session, actor_for(session, district.members["M005"]), number, facts)
        short = item_details(
            session, actor_for(session, district.members["M003"]), number, facts, events=2
        )
    assert [step.title for step in details.milestones] == ["整改"]
    assert [event.action for event in details.history] == ["create", "plan", "submit", "reject"]
    assert details.history[0].actor_name == "张督查"
    assert details.history[-1].reason == "整改不到位"
    assert "submit" in details.summary.actions and "verify" not in details.summary.actions
    assert [event.action for event in short.history] == ["submit", "reject"]


def test_the_three_lists_hold_an_orgs_own_lists_and_no_problems(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    task = _new(engine, district, "B01", date(2026, 3, 10), kind="task", by="M005")
    commitment = _new(engine, district, "B01", date(2026, 6, 30), kind="commitment", by="M005")
    duty = _new(engine, district, "B01", None, kind="responsibility", by="M005")
    _new(engine, district, "B01", date(2026, 3, 20))  # a problem
    _new(engine, district, "B02", date(2026, 3, 20), kind="commitment", by="M007")
    dropped = _new(engine, district, "B01", date(2026, 3, 20), kind="task", by="M005")
    _do(engine, district, "M002", dropped, "cancel")
    with Session(engine) as session:
        member = actor_for(session, district.members["M006"])
        org = lists_org(session, member, None)
        assert org.code == "B01"
        found = three_lists(session, org)
        assert [item.number for item in found.items] == [commitment, task, duty]
        for text in ("B02", "G01", "镇机关第二"):
            with pytest.raises(InputRefused) as refused:
                lists_org(session, member, text)
            assert refused.value.code == "unknown_org"
        with pytest.raises(InputRefused):
            lists_org_by_id(session, member, district.orgs["B02"])
        general = actor_for(session, district.members["M009"])
        assert lists_org(session, general, "B02").code == "B02"


def test_pages_hold_a_fixed_number_and_a_page_past_the_end_shows_the_last(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    numbers = [_new(engine, district, "B01", date(2026, 3, 20)) for _ in range(25)]
    with Session(engine) as session:
        actor = actor_for(session, district.members["M005"])
        first = my_items(session, actor)
        last = my_items(session, actor, page=99)
    assert (first.total, first.pages, first.page) == (25, 3, 0)
    assert [item.number for item in first.items] == numbers[:10]
    assert last.page == 2 and [item.number for item in last.items] == numbers[20:]


def test_a_page_and_its_total_are_read_in_one_statement(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    for _ in range(12):
        _new(engine, district, "B01", date(2026, 3, 20))
    statements: list[str] = []

    def note(*args: object) -> None:
        statements.append(str(args[2]))

    with Session(engine) as session:
        actor = actor_for(session, district.members["M005"])
        event.listen(engine, "before_cursor_execute", note)
        try:
            second = my_items(session, actor, page=1)
        finally:
            event.remove(engine, "before_cursor_execute", note)
    assert (second.total, second.pages, second.page, len(second.items)) == (12, 2, 1, 2)
    assert len(statements) == 1


def test_an_items_details_take_five_statements_whatever_it_holds(
    engine: Engine, district: District, frozen_clock: FrozenClock
) -> None:
    number = _new(engine, district, "B01", date(2026, 3, 20))
    with transaction(engine) as session:
        secretary = actor_for(session, district.members["M005"])
        add_milestone(session, secretary, number, "制定整改方案", date(2026, 3, 10))
        request_extension(session, secretary, number, date(2026, 4, 20), "汛期", today=TODAY)
    statements: list[str] = []

    def note(*args: object) -> None:
        statements.append(str(args[2]))

    with Session(engine) as session:
        actor = actor_for(session, district.members["M005"])
        facts = _facts(session)
        event.listen(engine, "before_cursor_execute", note)
        try:
            details = item_details(session, actor, number, facts)
        finally:
            event.remove(engine, "before_cursor_execute", note)
    assert details.extension_requests == 1 and len(details.milestones) == 1
    # the item with its org and extension count, roadmap, facts, pending extension, history
    assert len(statements) == 5


def test_a_chats_scope_comes_from_its_org_codes(engine: Engine, district: District) -> None:
    with Session(engine) as session:
        general = district.org(session, "G01")
        assert org_scope(session, [None]) is None
        assert org_scope(session, ["G01", "B01"]) == (general.path,)
        assert org_scope(session, ["NOPE"]) == ()
