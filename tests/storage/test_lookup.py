"""The bot's look-up of the member behind a Telegram user, on SQLite and PostgreSQL.

What it reads must be the actor `models.people.actor_for` reads, whatever the
member's roles and groups.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, event, update
from sqlmodel import Session, col, select

from bot.guard import lookup
from models.db import transaction
from models.holidays import CalendarCache, import_holidays
from models.people import actor_for
from models.tables import GroupMember, GroupScope, InspectionGroup, Member
from models.workdays import HolidayRow
from tests.support import District

#: Telegram user ids in these tests: this plus the member's id.
USER_BASE = 7_000_000


def _bind_everyone(engine: Engine) -> None:
    with transaction(engine) as session:
        session.execute(update(Member).values(telegram_user_id=col(Member.id) + USER_BASE))


def test_the_look_up_reads_every_member_as_actor_for_does(
    engine: Engine, district: District
) -> None:
    _bind_everyone(engine)
    with Session(engine) as session:
        for code, member_id in district.members.items():
            who = lookup(session, USER_BASE + member_id, "zh")
            assert who is not None and who.code == code
            assert who.actor == actor_for(session, member_id), code


def test_two_groups_covering_one_org_give_its_path_once(engine: Engine, district: District) -> None:
    _bind_everyone(engine)
    inspector = district.members["M003"]
    with transaction(engine) as session:
        covered = set(session.exec(select(GroupScope.org_id)).all())
        group = InspectionGroup(code="GRP-TWIN", name="第二督查组")
        session.add(group)
        session.flush()
        assert group.id is not None
        session.add(GroupMember(group_id=group.id, member_id=inspector))
        for org_id in covered:
            session.add(GroupScope(group_id=group.id, org_id=org_id))
    with Session(engine) as session:
        who = lookup(session, USER_BASE + inspector, "zh")
        assert who is not None
        paths = who.actor.group_paths
        assert paths and len(paths) == len(set(paths))
        assert who.actor == actor_for(session, inspector)


def test_an_unbound_user_is_nobody(engine: Engine, district: District) -> None:
    with Session(engine) as session:
        assert lookup(session, 42, "zh") is None


def test_the_look_up_brings_the_holidays_version_so_the_calendar_reads_nothing_more(
    engine: Engine, district: District
) -> None:
    _bind_everyone(engine)
    tuesday = date(2026, 3, 3)  # a working day by the official calendar
    cache = CalendarCache()
    user = USER_BASE + district.members["M005"]
    with transaction(engine) as session:
        lookup(session, user, "zh")
        assert cache.calendar(session).is_workday(tuesday)
    with transaction(engine) as session:
        import_holidays(session, [HolidayRow(day=tuesday, is_workday=False, name="day off")])
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    with transaction(engine) as session:
        lookup(session, user, "zh")
        event.listen(engine, "before_cursor_execute", seen)
        try:
            assert not cache.calendar(session).is_workday(tuesday)
            assert cache.calendar(session).is_workday(date(2026, 3, 4))
        finally:
            event.remove(engine, "before_cursor_execute", seen)
    # The new days were loaded once; the token was not asked again.
    assert len(statements) == 1 and "holiday" in statements[0]
