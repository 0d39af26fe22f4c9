"""What a message about an item shows: a plain summary, computed fresh each time.

The light, overdue days and children's progress are derived here, never
stored (SPEC §3 "Derived, never stored stale"). The bot and the delivery jobs
render these the same way (bot/cards.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import BindParameter, bindparam
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, func, select

from models.db import read
from models.deadlines import Milestone as Step
from models.deadlines import days_overdue, light
from models.ledger import item_view
from models.permissions import Actor, allowed_actions
from models.tables import Evidence, Extension, Item, Member, Milestone, Org
from models.workdays import WorkCalendar


@dataclass(frozen=True)
class Facts:
    """What the summaries need to know about today."""

    today: date
    calendar: WorkCalendar
    warn_days: int


@dataclass(frozen=True)
class ItemSummary:
    number: int
    version: int
    kind: str
    title: str
    org_code: str
    org_name: str
    status: str
    severity: str
    due_date: date | None
    light: str | None
    days_overdue: int
    days_left: int | None
    responsible_name: str | None
    escalation_level: int
    extensions: int
    rejections: int
    relapses: int
    children_closed: int
    children_total: int
    evidence_count: int
    pending_extension_by: int | None
    pending_extension_due: date | None
    actions: frozenset[str]


# The statements are built once, at import: building them (the aliased
# children's comparisons above all) cost more CPU than running them, on every
# bot reply. The item numbers are one expanding parameter, `numbers`.
_NUMBERS: BindParameter[list[int]] = bindparam("numbers", expanding=True)
_CHILD = aliased(Item)
_CHILDREN = (
    select(func.count()).select_from(_CHILD).where(col(_CHILD.parent_number) == col(Item.number))
)
#: One row per item: its org, its responsible person's name and the counts
#: (a bot reply summarizes one item or a page: queries, not rows, cost here).
#: SQLAlchemy's select: sqlmodel's is typed for at most four columns.
_FACTS_OF_ITEMS = (
    sa_select(
        col(Item.number),
        col(Org.code),
        col(Org.name),
        col(Org.path),
        col(Member.name),
        select(func.count()).where(col(Evidence.item_number) == col(Item.number)).scalar_subquery(),
        _CHILDREN.where(col(_CHILD.status) == "closed").scalar_subquery(),
        _CHILDREN.scalar_subquery(),
    )
    .join(Org, col(Org.id) == col(Item.org_id))
    .outerjoin(Member, col(Member.id) == col(Item.responsible_id))
    .where(col(Item.number).in_(_NUMBERS))
)
#: Columns, not ORM objects: loading objects cost more than the rows' reading.
_MILESTONES_OF_ITEMS = sa_select(
    col(Milestone.item_number), col(Milestone.due_date), col(Milestone.done_at)
).where(col(Milestone.item_number).in_(_NUMBERS))
_PENDING_EXTENSIONS_OF_ITEMS = sa_select(
    col(Extension.item_number), col(Extension.requested_by_id), col(Extension.requested_due)
).where(col(Extension.item_number).in_(_NUMBERS), col(Extension.approved).is_(None))


def summarize(
    session: Session,
    item: Item,
    facts: Facts,
    *,
    reader: Actor | None = None,
    milestones: Mapping[int, Sequence[Milestone]] | None = None,
) -> ItemSummary:
    """The summary of one item; `actions` are the buttons `reader` may press."""
    return summarize_many(session, [item], facts, reader=reader, milestones=milestones)[0]


def summarize_many(
    session: Session,
    items: Sequence[Item],
    facts: Facts,
    *,
    reader: Actor | None = None,
    milestones: Mapping[int, Sequence[Milestone]] | None = None,
) -> list[ItemSummary]:
    """Summaries of several items with a fixed number of queries, whatever their count.

    `milestones`: the items' roadmap steps by number, when the caller has read
    them already (an item's details show them); otherwise they are read here.
    """
    return summarize_for(session, [(item, reader) for item in items], facts, milestones=milestones)


def summarize_for(
    session: Session,
    wanted: Sequence[tuple[Item, Actor | None]],
    facts: Facts,
    *,
    milestones: Mapping[int, Sequence[Milestone]] | None = None,
) -> list[ItemSummary]:
    """Summaries of items, each for its reader (`actions`: the buttons that reader
    may press; none for None), with a fixed number of queries: a delivery job
    renders many members' messages at once. `milestones` as in `summarize_many`."""
    if not wanted:
        return []
    numbers = {"numbers": sorted({item.number for item, _ in wanted if item.number is not None})}
    facts_of: dict[int, tuple[str, str, str, str | None, int, int, int]] = {
        number: (code, name, path, person, evidence, closed, total)
        for number, code, name, path, person, evidence, closed, total in read(
            session, _FACTS_OF_ITEMS, numbers
        ).all()
    }
    steps: dict[int, list[Step]] = {}
    if milestones is None:
        for number, due, done_at in read(session, _MILESTONES_OF_ITEMS, numbers):
            steps.setdefault(number, []).append(Step(due, done_at is not None))
    else:
        for number, rows in milestones.items():
            steps[number] = [Step(row.due_date, row.done_at is not None) for row in rows]
    pending = {
        number: (requested_by, requested_due)
        for number, requested_by, requested_due in read(
            session, _PENDING_EXTENSIONS_OF_ITEMS, numbers
        )
    }
    summaries = []
    for item, reader in wanted:
        assert item.number is not None
        org_code, org_name, org_path, responsible_name, evidence, closed, total = facts_of[
            item.number
        ]
        requested_by, requested_due = pending.get(item.number, (None, None))
        actions: frozenset[str] = frozenset()
        if reader is not None:
            actions = frozenset(
                allowed_actions(
                    reader,
                    item_view(item, org_path),
                    requested_by_id=requested_by,
                )
            )
        left = None
        if item.due_date is not None and item.status not in ("closed", "cancelled"):
            left = facts.calendar.workdays_between(facts.today, item.due_date)
        summaries.append(
            ItemSummary(
                number=item.number,
                version=item.version,
                kind=item.kind,
                title=item.title,
                org_code=org_code,
                org_name=org_name,
                status=item.status,
                severity=item.severity,
                due_date=item.due_date,
                light=light(
                    item.status,
                    item.due_date,
                    facts.today,
                    facts.calendar,
                    facts.warn_days,
                    steps.get(item.number, ()),
                ),
                days_overdue=days_overdue(item.status, item.due_date, facts.today, facts.calendar),
                days_left=left,
                responsible_name=responsible_name,
                escalation_level=item.escalation_level,
                extensions=item.extensions,
                rejections=item.rejections,
                relapses=item.relapses,
                children_closed=closed,
                children_total=total,
                evidence_count=evidence,
                pending_extension_by=requested_by,
                pending_extension_due=requested_due,
                actions=actions,
            )
        )
    return summaries
