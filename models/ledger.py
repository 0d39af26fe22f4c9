"""The one write path for items (DESIGN "One write path").

Every change here, in the caller's transaction: the domain checks the actor's
permission and the transition, the item changes and its version is bumped, an
event is appended to the chain, and the notifications the change causes are
owed in the outbox. The caller commits once; delivery happens after commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

from sqlmodel import Session, col, select

from models import clock
from models.audit import append_event
from models.limits import DESCRIPTION_MAX, NAME_MAX, REASON_MAX, TITLE_MAX
from models.outbox import notify
from models.people import inspectors_covering, leaders_above, leaders_of, secretaries_of
from models.permissions import Actor, ItemView, can_create, check
from models.roles import FINISHED, ITEM_KINDS, SEVERITIES, SOURCES
from models.states import Action, Refused, next_status
from models.tables import Evidence, Extension, Item, Member, Milestone, Org

#: Kinds of evidence a pocket holds (SPEC §3).
EVIDENCE_KINDS = ("photo", "document", "voice", "video", "location", "text")

# Stages of the notifications this module owes (the ladder's live in models.ladder).
ASSIGNED = "assigned"
SUBMITTED = "submitted"
VERIFIED = "verified"
REJECTED = "rejected"
REOPENED = "reopened"
CANCELLED = "cancelled"
EXTENSION_REQUESTED = "extension_requested"
EXTENSION_DECIDED = "extension_decided"


class InputRefused(Refused):
    """The input itself is wrong (too long, unknown, missing): nothing was written."""

    FALLBACK = MappingProxyType(
        {
            "title_required": "A title is required.",
            "too_long": "The {field} is {length} characters; at most {max} are allowed.",
            "unknown_kind": "Unknown kind {value!r}.",
            "unknown_severity": "Unknown severity {value!r}.",
            "unknown_source": "Unknown source {value!r}.",
            "unknown_item": "There is no item #{number}.",
            "unknown_org": "There is no org {value!r}.",
            "ambiguous_org": "{value!r} matches several orgs: {choices}.",
            "unknown_member": "There is no member {value!r}.",
            "no_responsible": "Org {org} has no secretary to be responsible; name one.",
            "due_in_past": "The due date {due} is already past.",
            "due_required": "A due date is required.",
            "stale": "This message is out of date: item #{number} has changed since.",
            "extension_pending": "An extension of #{number} is already waiting for a decision.",
            "no_extension_pending": "No extension of #{number} is waiting for a decision.",
            "responsible_outside_org": "{member} is not a member of {org}.",
            "not_a_child_org": "{org} is not below the item's org.",
            "nothing_to_split": "No org below the item's org to split it to.",
            "unknown_evidence_kind": "Unknown evidence kind {value!r}.",
            "unknown_milestone": "Item #{number} has no roadmap step {step}.",
        }
    )


def _limit(field: str, value: str, maximum: int) -> str:
    if len(value) > maximum:
        raise InputRefused("too_long", {"field": field, "length": len(value), "max": maximum})
    return value


def _clean_reason(reason: str | None) -> str | None:
    reason = (reason or "").strip() or None
    if reason is not None:
        _limit("reason", reason, REASON_MAX)
    return reason


def view_of(session: Session, item: Item) -> ItemView:
    """The permission view of an item."""
    org = session.get(Org, item.org_id)
    return item_view(item, org.path if org else "/")


def item_view(item: Item, org_path: str) -> ItemView:
    """The permission view of an item whose org's path the caller has read."""
    assert item.number is not None
    return ItemView(
        number=item.number,
        kind=item.kind,
        org_path=org_path,
        status=item.status,
        responsible_id=item.responsible_id,
        creator_id=item.creator_id,
        submitted_by_id=item.submitted_by_id,
    )


def get_item(session: Session, number: int, *, lock: bool = False) -> Item:
    """The item #number, locked for update when asked; InputRefused when there is none."""
    statement = select(Item).where(Item.number == number)
    if lock:
        statement = statement.with_for_update()
    item = session.exec(statement).first()
    if item is None:
        raise InputRefused("unknown_item", {"number": number})
    return item


def _touch(item: Item) -> None:
    item.version += 1


def _event(
    session: Session,
    item: Item,
    actor: Actor | None,
    action: str,
    *,
    from_status: str | None = None,
    reason: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> int:
    return append_event(
        session,
        action=action,
        item_number=item.number,
        actor_id=actor.member_id if actor else None,
        from_status=from_status,
        to_status=item.status,
        reason=reason,
        data=dict(data or {}),
    )


def _tell(
    session: Session,
    item: Item,
    stage: str,
    recipients: Sequence[Member | int | None],
    *,
    occurrence: int | None = None,
    skip: int | None = None,
    data: Mapping[str, Any] | None = None,
) -> None:
    seen: set[int] = set()
    for recipient in recipients:
        member_id = recipient.id if isinstance(recipient, Member) else recipient
        if member_id is None or member_id in seen or member_id == skip:
            continue
        seen.add(member_id)
        notify(
            session,
            stage=stage,
            item_number=item.number,
            due_date=item.due_date,
            recipient_id=member_id,
            occurrence=occurrence,
            data=dict(data or {}),
        )


@dataclass(frozen=True)
class NewItem:
    """What a person (or an import) says about a new item."""

    kind: str
    org_id: int
    title: str
    description: str = ""
    category: str = ""
    severity: str = "general"
    source: str = "inspection"
    due_date: date | None = None
    responsible_id: int | None = None
    external_ref: str | None = None
    rrule: str | None = None


def check_new_item(new: NewItem) -> NewItem:
    """The input rules of SPEC §4 for a new item; raise InputRefused naming the first broken one."""
    title = new.title.strip()
    if not title:
        raise InputRefused("title_required")
    _limit("title", title, TITLE_MAX)
    _limit("description", new.description, DESCRIPTION_MAX)
    _limit("category", new.category, NAME_MAX)
    if new.kind not in ITEM_KINDS:
        raise InputRefused("unknown_kind", {"value": new.kind})
    if new.severity not in SEVERITIES:
        raise InputRefused("unknown_severity", {"value": new.severity})
    if new.source not in SOURCES:
        raise InputRefused("unknown_source", {"value": new.source})
    return NewItem(**{**vars(new), "title": title, "description": new.description.strip()})


def create_item(
    session: Session,
    actor: Actor | None,
    new: NewItem,
    *,
    today: date | None = None,
    created_at: datetime | None = None,
    status: str = "open",
    parent_number: int | None = None,
) -> Item:
    """Create an item and tell its responsible person (and their secretary).

    `actor` None means the system (an import): no permission check, and past
    due dates and other statuses are accepted as the sheet says. A person's
    item must be due today or later (`today` in the deployment's zone).
    """
    new = check_new_item(new)
    org = session.get(Org, new.org_id)
    if org is None:
        raise InputRefused("unknown_org", {"value": new.org_id})
    if actor is not None:
        can_create(actor, new.kind, org.path)
        if new.due_date is not None and today is not None and new.due_date < today:
            raise InputRefused("due_in_past", {"due": new.due_date.isoformat()})
    responsible_id = new.responsible_id
    # A committee's head is often recorded as its leader (党委书记), not a secretary.
    secretaries = secretaries_of(session, new.org_id) or leaders_of(session, new.org_id)
    if responsible_id is None:
        if not secretaries:
            raise InputRefused("no_responsible", {"org": org.code})
        responsible_id = secretaries[0].id
    elif session.get(Member, responsible_id) is None:
        raise InputRefused("unknown_member", {"value": responsible_id})
    item = Item(
        kind=new.kind,
        org_id=new.org_id,
        responsible_id=responsible_id,
        title=new.title,
        description=new.description,
        category=new.category,
        severity=new.severity,
        source=new.source,
        creator_id=actor.member_id if actor else None,
        created_at=created_at or clock.now(),
        due_date=new.due_date,
        status=status,
        closed_at=(created_at or clock.now()) if status == "closed" else None,
        parent_number=parent_number,
        external_ref=new.external_ref,
        rrule=new.rrule,
    )
    session.add(item)
    session.flush()
    _event(
        session,
        item,
        actor,
        "create",
        data={
            "kind": item.kind,
            "org": org.code,
            "title": item.title,
            "due": item.due_date,
            "responsible": responsible_id,
            "source": item.source,
            "parent": parent_number,
            "external_ref": item.external_ref,
        },
    )
    if item.status not in FINISHED:
        _tell(session, item, ASSIGNED, [responsible_id, *secretaries], skip=item.creator_id)
    return item


def _checked(session: Session, actor: Actor, number: int, action: str, version: int | None) -> Item:
    item = get_item(session, number, lock=True)
    if version is not None and version != item.version:
        raise InputRefused("stale", {"number": number})
    check(actor, action, view_of(session, item))
    return item


def act(
    session: Session,
    actor: Actor,
    number: int,
    action: str,
    *,
    reason: str | None = None,
    version: int | None = None,
    data: Mapping[str, Any] | None = None,
) -> Item:
    """Apply a status action (acknowledge, note, submit, verify, reject, cancel, reopen).

    `version`, from a button, makes a stale press fail instead of acting on an
    item that changed since the message was drawn. Raises a `Refused`.
    """
    item = _checked(session, actor, number, action, version)
    reason = _clean_reason(reason)
    before = item.status
    item.status = next_status(before, action, reason)
    now = clock.now()
    if action == Action.SUBMIT:
        item.submitted_by_id = actor.member_id
    elif action == Action.VERIFY:
        item.closed_at = now
    elif action == Action.REJECT:
        item.rejections += 1
    elif action == Action.REOPEN:
        item.relapses += 1
        item.closed_at = None
        item.submitted_by_id = None
        item.escalation_level = 0
    elif action == Action.CANCEL:
        item.closed_at = now
    _touch(item)
    session.add(item)
    seq = _event(session, item, actor, action, from_status=before, reason=reason, data=data)
    view = view_of(session, item)
    if action == Action.SUBMIT:
        _tell(
            session,
            item,
            SUBMITTED,
            inspectors_covering(session, view.org_path),
            occurrence=seq,
            skip=actor.member_id,
        )
    elif action in (Action.VERIFY, Action.REJECT):
        stage = VERIFIED if action == Action.VERIFY else REJECTED
        _tell(
            session,
            item,
            stage,
            [item.responsible_id],
            occurrence=seq,
            data={"reason": reason} if reason else None,
        )
    elif action in (Action.REOPEN, Action.CANCEL):
        stage = REOPENED if action == Action.REOPEN else CANCELLED
        _tell(
            session,
            item,
            stage,
            [item.responsible_id],
            occurrence=seq,
            skip=actor.member_id,
            data={"reason": reason},
        )
    if action == Action.VERIFY and item.parent_number is not None:
        _close_parent_when_children_done(session, item.parent_number)
    return item


def _close_parent_when_children_done(session: Session, parent_number: int) -> None:
    parent = get_item(session, parent_number, lock=True)
    statuses = session.exec(select(Item.status).where(Item.parent_number == parent_number)).all()
    if parent.status in FINISHED or not statuses:
        return
    if all(status in FINISHED for status in statuses) and "closed" in statuses:
        before = parent.status
        parent.status = "closed"
        parent.closed_at = clock.now()
        _touch(parent)
        session.add(parent)
        seq = _event(
            session,
            parent,
            None,
            "close_by_children",
            from_status=before,
            data={"children": len(statuses)},
        )
        _tell(session, parent, VERIFIED, [parent.responsible_id], occurrence=seq)


def children_progress(session: Session, number: int) -> tuple[int, int]:
    """(closed, all) over the item's child items: "k of n closed"."""
    statuses = session.exec(select(Item.status).where(Item.parent_number == number)).all()
    return sum(status == "closed" for status in statuses), len(statuses)


def add_note(session: Session, actor: Actor, number: int, text: str) -> Item:
    """A progress note (optional, SPEC §7): an open item moves to in progress."""
    text = _limit("note", text.strip(), DESCRIPTION_MAX)
    if not text:
        raise InputRefused("too_long", {"field": "note", "length": 0, "max": DESCRIPTION_MAX})
    return act(session, actor, number, Action.NOTE, data={"text": text})


def add_milestone(session: Session, actor: Actor, number: int, title: str, due: date) -> Milestone:
    """Add a roadmap step; an open item moves to in progress."""
    title = _limit("step", title.strip(), TITLE_MAX)
    if not title:
        raise InputRefused("title_required")
    act(session, actor, number, Action.PLAN, data={"step": title, "due": due})
    milestone = Milestone(item_number=number, title=title, due_date=due)
    session.add(milestone)
    session.flush()
    return milestone


def complete_milestone(session: Session, actor: Actor, number: int, milestone_id: int) -> Milestone:
    """Mark a roadmap step done."""
    item = _checked(session, actor, number, Action.PLAN, None)
    milestone = session.get(Milestone, milestone_id)
    if milestone is None or milestone.item_number != number:
        raise InputRefused("unknown_milestone", {"number": number, "step": milestone_id})
    if milestone.done_at is None:
        milestone.done_at = clock.now()
        session.add(milestone)
        _touch(item)
        _event(session, item, actor, "milestone_done", data={"step": milestone.title})
    return milestone


@dataclass(frozen=True)
class NewEvidence:
    kind: str
    file_id: str | None = None
    file_unique_id: str | None = None
    file_name: str | None = None
    text: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    sha256: str | None = None
    archived_path: str | None = None


def attach_evidence(session: Session, actor: Actor, number: int, evidence: NewEvidence) -> Evidence:
    """Put evidence in the item's pocket; the status does not move."""
    if evidence.kind not in EVIDENCE_KINDS:
        raise InputRefused("unknown_evidence_kind", {"value": evidence.kind})
    if evidence.text is not None:
        _limit("text", evidence.text, DESCRIPTION_MAX)
    item = _checked(session, actor, number, Action.ATTACH, None)
    next_status(item.status, Action.ATTACH)
    row = Evidence(
        item_number=number,
        member_id=actor.member_id,
        created_at=clock.now(),
        **vars(evidence),
    )
    session.add(row)
    session.flush()
    _touch(item)
    _event(
        session,
        item,
        actor,
        "attach",
        data={
            "evidence": row.id,
            "kind": row.kind,
            "file_unique_id": row.file_unique_id,
            "sha256": row.sha256,
        },
    )
    return row


def pending_extension(session: Session, number: int) -> Extension | None:
    return session.exec(
        select(Extension).where(Extension.item_number == number, col(Extension.approved).is_(None))
    ).first()


def request_extension(
    session: Session, actor: Actor, number: int, new_due: date, reason: str, *, today: date
) -> Extension:
    """Ask to move the due date (延期); the approvers are told."""
    item = _checked(session, actor, number, Action.EXTEND_REQUEST, None)
    next_status(item.status, Action.EXTEND_REQUEST)
    reason_text = _clean_reason(reason)
    if reason_text is None:
        raise Refused("reason_required", {"status": item.status, "action": "extend"})
    if new_due < today or (item.due_date is not None and new_due <= item.due_date):
        raise InputRefused("due_in_past", {"due": new_due.isoformat()})
    if pending_extension(session, number) is not None:
        raise InputRefused("extension_pending", {"number": number})
    request = Extension(
        item_number=number,
        requested_by_id=actor.member_id,
        old_due=item.due_date,
        requested_due=new_due,
        reason=reason_text,
        requested_at=clock.now(),
    )
    session.add(request)
    session.flush()
    _touch(item)
    seq = _event(
        session,
        item,
        actor,
        "extend_request",
        reason=reason_text,
        data={"from": item.due_date, "to": new_due, "extension": request.id},
    )
    view = view_of(session, item)
    approvers = inspectors_covering(session, view.org_path) or leaders_above(session, view.org_path)
    _tell(
        session,
        item,
        EXTENSION_REQUESTED,
        approvers,
        occurrence=seq,
        skip=actor.member_id,
        data={"extension": request.id},
    )
    return request


def decide_extension(
    session: Session, actor: Actor, number: int, *, approve: bool, version: int | None = None
) -> Extension:
    """Approve or deny the pending extension; an approval moves the due date and
    restarts the ladder (its stages are keyed by due date)."""
    item = get_item(session, number, lock=True)
    request = pending_extension(session, number)
    if request is None:
        raise InputRefused("no_extension_pending", {"number": number})
    if version is not None and version != item.version:
        raise InputRefused("stale", {"number": number})
    check(
        actor, Action.EXTEND_DECIDE, view_of(session, item), requested_by_id=request.requested_by_id
    )
    next_status(item.status, Action.EXTEND_DECIDE)
    request.approved = approve
    request.decided_by_id = actor.member_id
    request.decided_at = clock.now()
    session.add(request)
    if approve:
        item.due_date = request.requested_due
        item.extensions += 1
        item.escalation_level = 0
    _touch(item)
    session.add(item)
    seq = _event(
        session,
        item,
        actor,
        "extend_approve" if approve else "extend_deny",
        data={"extension": request.id, "to": request.requested_due},
    )
    _tell(
        session,
        item,
        EXTENSION_DECIDED,
        [item.responsible_id, request.requested_by_id],
        occurrence=seq,
        data={"approved": approve, "to": request.requested_due},
    )
    return request


def split_item(
    session: Session, actor: Actor, number: int, org_codes: Sequence[str] | None
) -> list[Item]:
    """Hand an item down (分解下发): one child per org below the item's org.

    `org_codes` None means every branch below. Orgs that already have a child
    of this item are skipped, so splitting twice adds only the new ones.
    """
    parent = _checked(session, actor, number, Action.SPLIT, None)
    next_status(parent.status, Action.SPLIT)
    parent_org = session.get(Org, parent.org_id)
    assert parent_org is not None
    below = col(Org.path).startswith(parent_org.path) & (Org.id != parent_org.id)
    if org_codes is None:
        targets = list(
            session.exec(select(Org).where(below, Org.kind == "branch").order_by(Org.code)).all()
        )
    else:
        targets = []
        for code in dict.fromkeys(org_codes):
            org = session.exec(select(Org).where(Org.code == code)).first()
            if org is None:
                raise InputRefused("unknown_org", {"value": code})
            if org.id == parent_org.id or not org.path.startswith(parent_org.path):
                raise InputRefused("not_a_child_org", {"org": code})
            targets.append(org)
    done = set(session.exec(select(Item.org_id).where(Item.parent_number == number)).all())
    targets = [org for org in targets if org.id not in done]
    if not targets and not done:
        raise InputRefused("nothing_to_split", {"number": number})
    children = []
    for org in targets:
        assert org.id is not None  # a stored org
        children.append(
            create_item(
                session,
                None,
                NewItem(
                    kind=parent.kind,
                    org_id=org.id,
                    title=parent.title,
                    description=parent.description,
                    category=parent.category,
                    severity=parent.severity,
                    source=parent.source,
                    due_date=parent.due_date,
                ),
                parent_number=number,
            )
        )
    before = parent.status
    if parent.status == "open":
        parent.status = "in_progress"
    _touch(parent)
    session.add(parent)
    _event(
        session,
        parent,
        actor,
        "split",
        from_status=before,
        data={"children": [child.number for child in children]},
    )
    return children
