"""The demo district of `closeout sandbox`: a town's Party organisations, their
people in every role, and a ledger that is due this week whatever day it is.

The files here are in a team's own format (Chinese headers), and go through
the same imports a real deployment uses:

    orgs.csv, members.csv, groups.csv   the directory        (models.directory)
    ledger.csv                          the ledger           (models.ledger_import)
    roadmap.csv                         roadmap steps of ledger items (models.ledger.add_milestone)
    chats.csv                           the group chats and the bulletins each receives

Dates in ledger.csv and roadmap.csv are working days relative to the day the
sandbox starts: `T-4` is four working days ago, `T+10` ten working days ahead
(weekends and official holidays skipped, as deadlines are counted). So the
ledger always shows green, yellow and red lights, an item submitted and
awaiting verification, one behind its roadmap, and one four working days
overdue — a working day away from a level-1 escalation (谈话提醒). The loader
writes the dated copy it imports next to the database (`sandbox-ledger.csv`):
a real ledger a team could import with `closeout import ledger`.

Every member is bound to a simulated Telegram user (user id
SANDBOX_USER_BASE + position in code order) through a one-time invite, as a
person would bind with `/start CODE`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from models.db import transaction
from models.directory import apply_directory, read_directory
from models.holidays import load_calendar
from models.invites import create_invites, redeem_invite
from models.ledger import add_milestone, complete_milestone
from models.ledger_import import apply_ledger, read_ledger
from models.people import actor_for
from models.roles import split_roles
from models.tables import Item, Member, Org
from models.workdays import WorkCalendar

#: Where the demo's files are (package data).
DEMO_DIR = Path(__file__).parent
#: Telegram user id of the first member in code order; the others follow.
SANDBOX_USER_BASE = 100_000
#: The dated copy of ledger.csv the loader imports, written to the data folder.
DATED_LEDGER = "sandbox-ledger.csv"
#: Columns of ledger.csv whose cells may be relative dates.
LEDGER_DATE_COLUMNS = ("发现时间", "整改时限")
#: Roles from the most to the least senior: a member is shown by the first they hold.
SENIORITY = ("admin", "leader", "inspector", "secretary", "member")
#: Order of the people on the page: who logs, who rectifies, who leads, who operates.
PICKER_ORDER = ("inspector", "secretary", "leader", "member", "admin")
#: Days an invite of the demo lives (it is redeemed at once).
INVITE_DAYS = 1

_RELATIVE = re.compile(r"^T([+-]\d+)$")
_YES = frozenset({"是", "yes", "y", "true", "1", "done", "完成"})


@dataclass(frozen=True)
class Person:
    """A member of the demo as the page lists them: a simulated Telegram user."""

    user_id: int
    code: str
    name: str
    roles: tuple[str, ...]
    org_code: str
    org_name: str
    language: str

    @property
    def role(self) -> str:
        """The member's most senior role, the one the page names them by."""
        return next(role for role in SENIORITY if role in self.roles)


@dataclass(frozen=True)
class GroupChat:
    """A work chat of the demo: its members and the bulletins it receives."""

    chat_id: int
    title: str
    member_codes: tuple[str, ...]
    bulletins: tuple[str, ...]
    scope_code: str | None


@dataclass(frozen=True)
class Cast:
    """Who is in the sandbox: the bound people and the group chats."""

    people: tuple[Person, ...]
    groups: tuple[GroupChat, ...]

    def person(self, code: str) -> Person:
        """The person with member code `code`."""
        for person in self.people:
            if person.code == code:
                return person
        raise KeyError(code)

    def bulletin_chats(self) -> str:
        """The BULLETIN_CHATS setting for the cast's groups."""
        return bulletin_chats(self.groups)


def bulletin_chats(groups: Iterable[GroupChat]) -> str:
    """The BULLETIN_CHATS setting for `groups` (`KIND:CHAT_ID[:ORG]`, comma-separated)."""
    entries = []
    for group in groups:
        scope = f":{group.scope_code}" if group.scope_code else ""
        entries += [f"{kind}:{group.chat_id}{scope}" for kind in group.bulletins]
    return ",".join(entries)


# --- relative dates -----------------------------------------------------------


def working_days_from(today: date, offset: int, calendar: WorkCalendar) -> date:
    """The day `offset` working days from `today` (negative: before it).

    Ahead, the due date of "N working days" (`add_workdays`); behind, the due
    date that makes an item exactly -offset working days overdue today
    (`workdays_between(day, today) == -offset`).
    """
    if offset >= 0:
        return calendar.add_workdays(today, offset)
    day, counted = today, 0
    while counted < -offset:
        if calendar.is_workday(day):
            counted += 1
        day -= timedelta(days=1)
    return day


def resolve(cell: str, today: date, calendar: WorkCalendar) -> str:
    """A cell with its relative date (`T-4`, `T+10`) made an ISO date; other cells as they are."""
    match = _RELATIVE.match(cell.strip())
    if match is None:
        return cell
    return working_days_from(today, int(match.group(1)), calendar).isoformat()


def dated_ledger(template: Path, today: date, calendar: WorkCalendar) -> str:
    """ledger.csv with its relative dates resolved for `today`, as CSV text."""
    with template.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    dated = [header.index(name) for name in LEDGER_DATE_COLUMNS if name in header]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in body:
        writer.writerow(
            [resolve(cell, today, calendar) if i in dated else cell for i, cell in enumerate(row)]
        )
    return out.getvalue()


def _records(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return [
            {key: (value or "").strip() for key, value in row.items()}
            for row in csv.DictReader(handle)
        ]


def _codes(cell: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in cell.replace("；", ";").split(";") if part.strip())


def read_groups(demo_dir: Path = DEMO_DIR) -> tuple[GroupChat, ...]:
    """The demo's group chats (chats.csv)."""
    return tuple(
        GroupChat(
            chat_id=int(row["chat_id"]),
            title=row["title"],
            member_codes=_codes(row["member_codes"]),
            bulletins=_codes(row["bulletins"]),
            scope_code=row["scope_org_code"] or None,
        )
        for row in _records(demo_dir / "chats.csv")
    )


# --- loading ------------------------------------------------------------------


def load_demo(
    engine: Engine,
    *,
    today: date,
    out_dir: Path,
    zone: ZoneInfo,
    demo_dir: Path = DEMO_DIR,
) -> Cast:
    """Load the demo into an empty, migrated database, in one transaction.

    Imports the directory and the ledger dated for `today` (its dated copy
    is written to `out_dir / DATED_LEDGER`), adds the roadmap steps as each
    item's responsible person, and binds every member to a sandbox user
    through an invite. The imports owe their notifications (new items'
    assignments) in the outbox, as a real import does; the pump delivers them.

    Returns the cast. Raises `models.sheets.ImportRefused` if a demo file is
    refused (nothing is written then).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with transaction(engine) as session:
        apply_directory(session, read_directory(demo_dir, session=session))
        calendar = load_calendar(session)
        ledger = out_dir / DATED_LEDGER
        ledger.write_text(
            dated_ledger(demo_dir / "ledger.csv", today, calendar), encoding="utf-8-sig"
        )
        apply_ledger(session, read_ledger(ledger, session=session, zone=zone))
        _add_roadmap(session, _records(demo_dir / "roadmap.csv"), today, calendar)
        _bind_everyone(session)
    return read_cast(engine, demo_dir)


def _add_roadmap(
    session: Session, steps: Iterable[dict[str, str]], today: date, calendar: WorkCalendar
) -> None:
    # Each step is planned (and, when done, ticked off) by the item's responsible person.
    for step in steps:
        item = session.exec(select(Item).where(Item.external_ref == step["外部编号"])).one()
        assert item.number is not None and item.responsible_id is not None
        actor = actor_for(session, item.responsible_id)
        due = date.fromisoformat(resolve(step["时限"], today, calendar))
        milestone = add_milestone(session, actor, item.number, step["步骤"], due)
        if step["完成"].lower() in _YES:
            assert milestone.id is not None
            complete_milestone(session, actor, item.number, milestone.id)


def _bind_everyone(session: Session) -> None:
    # The way a person binds (/start CODE), for every member at once.
    members = list(session.exec(select(Member).order_by(col(Member.code))).all())
    issued = create_invites(
        session, member_ids=[m.id for m in members if m.id is not None], days=INVITE_DAYS
    )
    for position, invite in enumerate(issued, start=1):
        user_id = SANDBOX_USER_BASE + position
        redeem_invite(session, code=invite.code, telegram_user_id=user_id, chat_id=user_id)


def read_cast(engine: Engine, demo_dir: Path = DEMO_DIR) -> Cast:
    """The bound members of the database and the demo's group chats."""
    with Session(engine) as session:
        rows = session.exec(
            select(Member, Org)
            .where(col(Member.telegram_user_id).is_not(None), Member.org_id == Org.id)
            .order_by(col(Member.code))
        ).all()
        people = [
            Person(
                user_id=int(member.telegram_user_id or 0),
                code=member.code,
                name=member.name,
                roles=tuple(role for role in SENIORITY if role in split_roles(member.roles)),
                org_code=org.code,
                org_name=org.name,
                language=member.language or "zh",
            )
            for member, org in rows
        ]
    return Cast(people=tuple(_picker_order(people)), groups=read_groups(demo_dir))


def _picker_order(people: Sequence[Person]) -> list[Person]:
    return sorted(people, key=lambda person: (PICKER_ORDER.index(person.role), person.code))
