"""The read side of SPEC §4: /my, /item, /ledger, /overdue, /lists, as queries.

Plain functions that take the session and never write. Scope always comes
from `models.permissions` (`scope_paths`, `can_view`, `can_view_lists`): no
function here returns an item its reader may not see. Lists are read one
page at a time with a fixed number of queries, whatever the ledger's size.

Definitions the replies rely on:

- *Most urgent first*: by due date, earliest first, then by number; items
  without a due date last. Every item listed is unfinished, so the overdue
  ones (due before today) come first, the most overdue at the top.
- *Overdue*: unfinished and due before today (`models.deadlines.is_overdue`);
  "most overdue first" is the earliest due date first.
- *On-time rate*: among the items of the scope that are closed (已销号) and
  have a due date, the share closed on or before that date, the closing day
  taken in the deployment's time zone. The due date is the current one, so
  an approved extension (延期, counted apart) moves the deadline. Cancelled
  items and items closed without a due date count neither way; with nothing
  closed the rate is None, not 0 or 100%.
- The counts cover every kind of item in the scope (the ledger's problems
  and the three lists), like `/export`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from math import ceil
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import CompoundSelect, Select, and_, bindparam, case, exists, false, or_, union
from sqlalchemy import select as sa_select
from sqlalchemy.sql.elements import BindParameter, ColumnElement, Label
from sqlmodel import Session, col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from models.db import read
from models.deadlines import GREEN, RED, YELLOW, light
from models.ledger import InputRefused, view_of
from models.orgs import resolve_org
from models.permissions import (
    ADMIN,
    INSPECTOR,
    LEADER,
    ROLE_REQUIRED,
    SECRETARY,
    THREE_LISTS,
    Actor,
    PermissionRefused,
    can_view,
    can_view_lists,
    in_subtree,
    scope_paths,
)
from models.roles import FINISHED, STATUSES
from models.summaries import Facts, ItemSummary, summarize
from models.tables import Event, Extension, Item, Member, Milestone, Org

#: Items on one page of /my and /overdue.
PAGE_SIZE = 10
#: Entries on one page of /lists (each brings its roadmap, so fewer).
LISTS_PAGE_SIZE = 6
#: History events shown on an item's details, the latest ones.
HISTORY_SHOWN = 5
#: The three lists in the order they are disclosed (承诺、任务、责任).
LIST_KINDS: tuple[str, ...] = ("commitment", "task", "responsibility")
LIGHTS: tuple[str, ...] = (RED, YELLOW, GREEN)


@dataclass(frozen=True)
class ItemPage:
    """One page of a list of items; `page` is 0-based and always a real page."""

    items: list[Item]
    page: int
    pages: int
    total: int


def _under(paths: Sequence[str | BindParameter[str]]) -> ColumnElement[bool]:
    # Org.path under any of the prefixes; nothing at all for no prefix.
    if not paths:
        return false()
    return or_(*(col(Org.path).startswith(path) for path in paths))


def _within(paths: tuple[str, ...] | None) -> ColumnElement[bool] | None:
    # None (everything) adds no condition.
    return None if paths is None else _under(paths)


def _urgent_order(statement: SelectOfScalar[Item]) -> SelectOfScalar[Item]:
    # Earliest due first (overdue ones are the earliest), no due date last,
    # then by number so pages are stable. `IS NULL` sorts false before true on
    # both backends, without NULLS LAST.
    return statement.order_by(col(Item.due_date).is_(None), col(Item.due_date), col(Item.number))


def _paginate(
    session: Session,
    statement: SelectOfScalar[Item],
    page: int,
    per_page: int,
    params: Mapping[str, Any] | None = None,
) -> ItemPage:
    # The page and the total in one statement (a window count over the whole
    # match): asked on every /my. Only a page past the end comes back empty
    # with things to show; the total is then counted, and the last page read.
    # `params`: values for the statement's bound parameters.
    page = max(page, 0)
    values = params or {}
    rows = session.execute(_counted(statement, page, per_page), values).all()
    if rows:
        total = rows[0][1]
    elif page == 0:
        total = 0
    else:
        total = session.execute(
            select(func.count()).select_from(statement.order_by(None).subquery()), values
        ).scalar_one()
    pages = max(1, ceil(total / per_page))
    if page > pages - 1:
        page = pages - 1
        rows = session.execute(_counted(statement, page, per_page), values).all()
    return ItemPage(items=[item for item, _ in rows], page=page, pages=pages, total=total)


def _counted(statement: SelectOfScalar[Item], page: int, per_page: int) -> Select[Item, int]:
    counted = statement.add_columns(func.count().over().label("total"))
    return counted.offset(page * per_page).limit(per_page)


def _role_paths(actor: Actor, role: str) -> tuple[str, ...]:
    # The subtrees one role of the actor acts in (models.permissions' rule:
    # a leader their org's, an inspector their groups').
    if role not in actor.roles:
        return ()
    return (actor.org_path,) if role == LEADER else actor.group_paths


def _waiting_for(inspecting: int, deciding: int) -> ColumnElement[bool]:
    # The rules are in `my_items`' docstring, for an actor inspecting under
    # `inspecting` org paths and deciding extensions under `deciding` (bound as
    # `me`, `inspect_0`…, `decide_0`…: see `_waiting_params`). Each rule is its
    # own sub-select of item numbers, so the database reaches each by an index
    # (responsible person, status, pending extension) instead of testing the
    # rules' OR on every item of the ledger; built once per shape
    # (`_waiting_statement`), since building it cost more than running it.
    me: BindParameter[int] = bindparam("me")
    wanted = [select(Item.number).where(col(Item.responsible_id) == me)]
    if inspecting:
        wanted.append(
            select(Item.number)
            .join(Org, col(Org.id) == col(Item.org_id))
            .where(
                col(Item.status) == "submitted",
                or_(col(Item.submitted_by_id).is_(None), col(Item.submitted_by_id) != me),
                _under([bindparam(f"inspect_{n}") for n in range(inspecting)]),
            )
        )
    if deciding:
        wanted.append(
            select(col(Extension.item_number))
            .join(Item, col(Item.number) == col(Extension.item_number))
            .join(Org, col(Org.id) == col(Item.org_id))
            .where(
                col(Extension.approved).is_(None),
                col(Extension.requested_by_id) != me,
                _under([bindparam(f"decide_{n}") for n in range(deciding)]),
            )
        )
    numbers: CompoundSelect[tuple[int]] = union(*(part.correlate(None) for part in wanted))
    return and_(col(Item.status).not_in(FINISHED), col(Item.number).in_(numbers))


def _waiting_params(actor: Actor) -> tuple[tuple[int, int], dict[str, Any]]:
    # `_waiting_for`'s shape and its bound values for `actor`.
    inspecting = _role_paths(actor, INSPECTOR)
    deciding = (*inspecting, *_role_paths(actor, LEADER))
    params: dict[str, Any] = {"me": actor.member_id}
    params.update((f"inspect_{n}", path) for n, path in enumerate(inspecting))
    params.update((f"decide_{n}", path) for n, path in enumerate(deciding))
    return (len(inspecting), len(deciding)), params


def my_items(
    session: Session, actor: Actor, *, page: int = 0, per_page: int = PAGE_SIZE
) -> ItemPage:
    """The unfinished items waiting for `actor`, most urgent first, one page:

    - the items they are responsible for;
    - as an inspector, submitted items in the groups' subtrees that someone
      else submitted (nobody verifies their own submission);
    - as an inspector or leader, items in their subtrees with an extension
      waiting for a decision that someone else asked for.

    An admin's list holds only their own items: an admin may verify anything,
    but the inspectors of the scope are the ones who are asked to.
    """
    shape, params = _waiting_params(actor)
    return _paginate(session, _waiting_statement(*shape), page, per_page, params)


@functools.lru_cache(maxsize=256)
def _waiting_statement(inspecting: int, deciding: int) -> SelectOfScalar[Item]:
    # `my_items`' statement, most urgent first, built once per shape.
    return _urgent_order(select(Item).where(_waiting_for(inspecting, deciding)))


def overdue_items(
    session: Session,
    *,
    today: date,
    scope: tuple[str, ...] | None,
    page: int = 0,
    per_page: int = PAGE_SIZE,
) -> ItemPage:
    """Unfinished items under `scope` (org-path prefixes; None = all) due before
    `today`, most overdue first, one page."""
    statement = (
        select(Item)
        .join(Org, col(Org.id) == col(Item.org_id))
        .where(col(Item.status).not_in(FINISHED), col(Item.due_date) < today)
    )
    within = _within(scope)
    if within is not None:
        statement = statement.where(within)
    return _paginate(session, _urgent_order(statement), page, per_page)


# --- the ledger's counts ---------------------------------------------------------


@dataclass(frozen=True)
class LedgerCounts:
    """Counts for a scope. Every status and light is a key, with 0 when none."""

    by_status: Mapping[str, int]
    by_light: Mapping[str, int]
    overdue: int
    #: Closed items that have a due date: the on-time rate's denominator.
    closed_with_due: int
    #: Of those, closed on or before the due date (local day).
    closed_on_time: int

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def on_time_rate(self) -> float | None:
        """closed_on_time / closed_with_due, or None when nothing is closed."""
        if not self.closed_with_due:
            return None
        return self.closed_on_time / self.closed_with_due


def _local_day(moment: datetime, zone: ZoneInfo) -> date:
    # SQLite hands stored times back naive; they mean UTC (models.tables).
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).date()


def behind_roadmap(today: date) -> Label[bool]:
    """A column `behind`: the item has a roadmap step past its date and not done."""
    return (
        exists()
        .where(
            col(Milestone.item_number) == col(Item.number),
            col(Milestone.done_at).is_(None),
            col(Milestone.due_date) < today,
        )
        .label("behind")
    )


def grouped_light(facts: Facts, status: str, due: date | None, is_behind: bool) -> str | None:
    """The light of items counted together by (status, due date, `behind_roadmap`)."""
    # One milestone past its date and not done stands for "behind the roadmap".
    late_step = ((facts.today - timedelta(days=1), False),) if is_behind else ()
    return light(status, due, facts.today, facts.calendar, facts.warn_days, late_step)


#: Items counted by (status, due date).
_Groups = Select[str, date | None, int]


@functools.lru_cache(maxsize=64)
def _ledger_statements(
    paths: int | None,
) -> tuple[_Groups, _Groups, Select[date | None, datetime | None]]:
    # `ledger_counts`' three statements for a scope of `paths` org-path prefixes
    # (bound as `scope_0`…; None: everything), and `today` for the roadmaps.
    # Built once per shape: building them cost more than the database's work.
    conditions: list[ColumnElement[bool]] = []
    if paths is not None:
        # The scope as its orgs' ids: the database reads the scope's orgs once
        # and their items by index, instead of every item's org.
        under = _under([bindparam(f"scope_{n}") for n in range(paths)])
        conditions.append(col(Item.org_id).in_(select(Org.id).where(under)))
    # Unfinished, as two inequalities: a NOT IN of a list is expanded per call.
    unfinished = [col(Item.status) != status for status in FINISHED]
    late_steps = select(col(Milestone.item_number)).where(
        col(Milestone.done_at).is_(None), col(Milestone.due_date) < bindparam("today")
    )
    groups = (
        sa_select(col(Item.status), col(Item.due_date), func.count())
        .where(*conditions)
        .group_by(col(Item.status), col(Item.due_date))
    )
    behind = (
        sa_select(col(Item.status), col(Item.due_date), func.count())
        .where(*unfinished, col(Item.number).in_(late_steps), *conditions)
        .group_by(col(Item.status), col(Item.due_date))
    )
    closed = sa_select(col(Item.due_date), col(Item.closed_at)).where(
        col(Item.status) == "closed",
        col(Item.due_date).is_not(None),
        col(Item.closed_at).is_not(None),
        *conditions,
    )
    return groups, behind, closed


def ledger_counts(
    session: Session, *, scope: tuple[str, ...] | None, facts: Facts, zone: ZoneInfo
) -> LedgerCounts:
    """Counts by status and light, overdue, and the on-time rate of the items
    under `scope` (org-path prefixes; None = everything, () = nothing).

    Three queries whatever the size: the items grouped by (status, due date),
    which gives the statuses and, for the unfinished groups, their lights
    (`models.deadlines.light` once per group); the unfinished items behind
    their roadmap, grouped the same way, which turns their share of a group
    yellow; and the closed items' (due date, closing time), because the
    closing day is local and time zones are not portable SQL.
    """
    groups, behind, closed = _ledger_statements(None if scope is None else len(scope))
    params: dict[str, Any] = {"today": facts.today}
    params.update((f"scope_{n}", path) for n, path in enumerate(scope or ()))

    by_status = dict.fromkeys(STATUSES, 0)
    unfinished: dict[tuple[str, date | None], int] = {}
    for status, due, count in read(session, groups, params):
        by_status[status] += count
        if status not in FINISHED:
            unfinished[(status, due)] = count
    late = {(status, due): count for status, due, count in read(session, behind, params)}
    by_light = dict.fromkeys(LIGHTS, 0)
    for (status, due), count in unfinished.items():
        behind_count = late.get((status, due), 0)
        for is_behind, share in ((True, behind_count), (False, count - behind_count)):
            colour = grouped_light(facts, status, due, is_behind) if share else None
            if colour is not None:
                by_light[colour] += share

    closed_count = on_time = 0
    for due, closed_at in read(session, closed, params):
        if due is None or closed_at is None:  # excluded by the query; this tells mypy
            continue
        closed_count += 1
        on_time += _local_day(closed_at, zone) <= due
    return LedgerCounts(
        by_status=by_status,
        by_light=by_light,
        overdue=by_light[RED],
        closed_with_due=closed_count,
        closed_on_time=on_time,
    )


# --- scopes -------------------------------------------------------------------------


def org_scope(session: Session, codes: Iterable[str | None]) -> tuple[str, ...] | None:
    """The scope of a chat configured for `codes` (BULLETIN_CHATS entries'
    org codes): None, the whole tree, if any entry has no code; otherwise the
    subtrees of the codes that exist (unknown codes give nothing, not everything)."""
    wanted = list(codes)
    if any(code is None for code in wanted):
        return None
    if not wanted:
        return ()
    paths = session.exec(select(Org.path).where(col(Org.code).in_(wanted))).all()
    roots: list[str] = []
    for path in sorted(set(paths)):
        if not any(in_subtree(path, root) for root in roots):
            roots.append(path)
    return tuple(roots)


def reader_scope(actor: Actor) -> tuple[str, ...] | None:
    """The org-path prefixes of the actor's ledger (`scope_paths`; None = everything).

    Raises PermissionRefused `role_required` for a plain member: they see
    their own items and their org's disclosed lists, but no ledger.
    """
    paths = scope_paths(actor)
    if paths == ():
        raise PermissionRefused(
            ROLE_REQUIRED, {"action": "ledger", "roles": (ADMIN, LEADER, INSPECTOR, SECRETARY)}
        )
    return paths


def narrow_scope(
    session: Session, scope: tuple[str, ...] | None, text: str
) -> tuple[tuple[str, ...] | None, Org | None]:
    """`scope` narrowed to the subtree of the org `text` names within it, and that org.

    Empty `text` leaves the scope as it is (and no org). An org outside the
    scope is refused as unknown (`models.orgs.resolve_org`), like a missing one.
    """
    if not text.strip():
        return scope, None
    org = resolve_org(session, text, scope)
    return (org.path,), org


def scope_roots(session: Session, scope: tuple[str, ...] | None) -> list[Org]:
    """The orgs at the top of each subtree of `scope`, by code ([] for everything)."""
    if not scope:
        return []
    return list(
        session.exec(select(Org).where(col(Org.path).in_(scope)).order_by(col(Org.code))).all()
    )


def org_in_scope(session: Session, org_id: int, scope: tuple[str, ...] | None) -> Org | None:
    """The org `org_id` when it lies in `scope`, else None (as if it did not exist)."""
    org = session.get(Org, org_id)
    if org is None or (scope is not None and not any(in_subtree(org.path, p) for p in scope)):
        return None
    return org


# --- one item's details ----------------------------------------------------------------


@dataclass(frozen=True)
class HistoryLine:
    """One event of an item's history, as a reader sees it."""

    at: datetime
    action: str
    actor_name: str | None
    reason: str | None


@dataclass(frozen=True)
class ItemDetails:
    summary: ItemSummary
    milestones: list[Milestone]
    extension_requests: int
    #: The latest events, oldest first.
    history: list[HistoryLine]


def visible_item(session: Session, actor: Actor, number: int) -> Item:
    """Item #number if `actor` may see it.

    An item outside the reader's scope is refused exactly like a missing
    number (InputRefused `unknown_item`): SPEC §1 says nobody sees anything
    outside their scope, and "#N is outside your scope" would confirm that
    #N exists — numbers are global, so probing them would map other units'
    problems. The reader loses nothing: they could not act on it anyway.
    """
    return _seen_by(session, actor, number, session.get(Item, number))


def _seen_by(session: Session, actor: Actor, number: int, item: Item | None) -> Item:
    # visible_item's rule, for an item the caller has read (or found missing).
    if item is None or not can_view(actor, view_of(session, item)):
        raise InputRefused("unknown_item", {"number": number})
    return item


#: The roadmap steps of items (an expanding `numbers`) and an item's latest
#: events with their actors' names (`number`, `limit`): built once, since
#: building them cost about what running them did, on every /item.
_STEPS_OF_ITEMS = (
    select(Milestone)
    .where(col(Milestone.item_number).in_(bindparam("numbers", expanding=True)))
    .order_by(col(Milestone.due_date), col(Milestone.id))
)
_LATEST_EVENTS = (
    sa_select(col(Event.created_at), col(Event.action), col(Member.name), col(Event.reason))
    .outerjoin(Member, col(Member.id) == col(Event.actor_id))
    .where(col(Event.item_number) == bindparam("number"))
    .order_by(col(Event.seq).desc())
    .limit(bindparam("limit"))
)


def milestones_of(session: Session, numbers: Sequence[int]) -> dict[int, list[Milestone]]:
    """The roadmap steps of each item, by date, in one query."""
    steps: dict[int, list[Milestone]] = {}
    if not numbers:
        return steps
    for step in session.exec(_STEPS_OF_ITEMS, params={"numbers": list(numbers)}):
        steps.setdefault(step.item_number, []).append(step)
    return steps


def history(session: Session, number: int, *, limit: int = HISTORY_SHOWN) -> list[HistoryLine]:
    """The latest `limit` events of item #number, oldest first, with the actor's name."""
    rows = read(session, _LATEST_EVENTS, {"number": number, "limit": limit})
    return [
        HistoryLine(at=at, action=action, actor_name=name, reason=reason)
        for at, action, name, reason in reversed(rows.all())
    ]


#: An item, its org (loaded with it, so the scope check reads no more) and the
#: count of its extension requests: one statement, built once, for /item.
_ITEM_WITH_ORG = (
    select(
        Item,
        Org,
        select(func.count())
        .select_from(Extension)
        .where(col(Extension.item_number) == col(Item.number))
        .scalar_subquery(),
    )
    .join(Org, col(Org.id) == col(Item.org_id))
    .where(col(Item.number) == bindparam("number"))
)


def item_details(
    session: Session, actor: Actor, number: int, facts: Facts, *, events: int = HISTORY_SHOWN
) -> ItemDetails:
    """Everything `/item N` shows; `summary.actions` are the buttons `actor` may press.

    Raises InputRefused `unknown_item` for a missing or out-of-scope number alike.
    """
    found = session.exec(_ITEM_WITH_ORG, params={"number": number}).first()
    item = _seen_by(session, actor, number, found[0] if found else None)
    requests = found[2] if found else 0
    steps = milestones_of(session, [number])
    return ItemDetails(
        summary=summarize(session, item, facts, reader=actor, milestones=steps),
        milestones=steps.get(number, []),
        extension_requests=requests,
        history=history(session, number, limit=events),
    )


# --- the three lists ------------------------------------------------------------------


def lists_org(session: Session, actor: Actor, text: str | None) -> Org:
    """The org whose three lists `actor` asks for: their own without `text`,
    otherwise the org `text` names among those they may read (their own org,
    and the orgs in their scope). Any other org is refused as unknown, so a
    name fragment does not reveal orgs outside the scope."""
    scope = scope_paths(actor)
    if not text:
        org = session.exec(select(Org).where(Org.path == actor.org_path)).first()
        if org is None:
            raise InputRefused("unknown_org", {"value": ""})
        return org
    readable = None if scope is None else (*scope, actor.org_path)
    org = resolve_org(session, text, readable)
    if not can_view_lists(actor, org.path):
        # The reader's own org's subtree matched; only the org itself is disclosed.
        raise InputRefused("unknown_org", {"value": text})
    return org


def lists_org_by_id(session: Session, actor: Actor, org_id: int) -> Org:
    """The org `org_id` if `actor` may read its lists (a page button's org, re-checked
    for the presser); InputRefused `unknown_org` otherwise, as if it did not exist."""
    org = session.get(Org, org_id)
    if org is None or not can_view_lists(actor, org.path):
        raise InputRefused("unknown_org", {"value": org_id})
    return org


def three_lists(
    session: Session, org: Org, *, page: int = 0, per_page: int = LISTS_PAGE_SIZE
) -> ItemPage:
    """The disclosed lists of `org` itself (not its subtree): commitments, then
    tasks, then responsibilities, each most urgent first; closed ones stay (their
    progress is part of the disclosure), cancelled ones do not. The caller
    checks `can_view_lists` (see `lists_org`)."""
    order = case({kind: rank for rank, kind in enumerate(LIST_KINDS)}, value=col(Item.kind))
    statement = (
        select(Item)
        .where(
            col(Item.org_id) == org.id,
            col(Item.kind).in_(THREE_LISTS),
            col(Item.status) != "cancelled",
        )
        .order_by(order, col(Item.due_date).is_(None), col(Item.due_date), col(Item.number))
    )
    return _paginate(session, statement, page, per_page)


__all__ = [
    "HISTORY_SHOWN",
    "LIGHTS",
    "LIST_KINDS",
    "LISTS_PAGE_SIZE",
    "PAGE_SIZE",
    "HistoryLine",
    "ItemDetails",
    "ItemPage",
    "LedgerCounts",
    "history",
    "item_details",
    "ledger_counts",
    "lists_org",
    "lists_org_by_id",
    "narrow_scope",
    "reader_scope",
    "milestones_of",
    "my_items",
    "org_in_scope",
    "org_scope",
    "overdue_items",
    "scope_roots",
    "three_lists",
    "visible_item",
]
