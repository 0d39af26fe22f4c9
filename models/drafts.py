"""Conversations in progress, as rows (DESIGN "Conversations").

One draft per member: starting a flow replaces whatever was open. Each message
that moves a flow updates the row in its own transaction, so a restart — even
kill -9 — loses nothing that was acknowledged.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from models import clock
from models.audit import canonical
from models.tables import Draft

#: How long a flow waits for its next message before it is forgotten.
FLOW_TTL = {
    "submit": timedelta(days=7),  #: evidence may take days to gather
    "new": timedelta(days=1),
    "reason": timedelta(hours=2),
    "attach": timedelta(minutes=15),  #: photos sent "right after" /new
}


def get_draft(session: Session, member_id: int) -> Draft | None:
    """The member's open draft, or None (an expired one is removed)."""
    draft = session.get(Draft, member_id)
    if draft is None:
        return None
    ttl = FLOW_TTL.get(draft.flow, timedelta(days=1))
    if clock.now() - draft.updated_at > ttl:
        session.delete(draft)
        session.flush()
        return None
    return draft


def start_draft(
    session: Session,
    member_id: int,
    flow: str,
    *,
    item_number: int | None = None,
    step: str = "",
    data: dict[str, Any] | None = None,
) -> Draft:
    """Open a flow for the member, replacing any other."""
    draft = session.get(Draft, member_id)
    if draft is None:
        draft = Draft(member_id=member_id, flow=flow, updated_at=clock.now())
    draft.flow, draft.step, draft.item_number = flow, step, item_number
    draft.data = canonical(data or {})
    draft.updated_at = clock.now()
    session.add(draft)
    session.flush()
    return draft


def draft_data(draft: Draft) -> dict[str, Any]:
    return dict(json.loads(draft.data or "{}"))


def update_draft(
    session: Session, draft: Draft, *, step: str | None = None, data: dict[str, Any] | None = None
) -> Draft:
    """Move the flow on: a new step and/or new data, stamped now."""
    if step is not None:
        draft.step = step
    if data is not None:
        draft.data = canonical(data)
    draft.updated_at = clock.now()
    session.add(draft)
    session.flush()
    return draft


def clear_draft(session: Session, member_id: int) -> bool:
    """Close the member's flow; True when one was open."""
    draft = session.get(Draft, member_id)
    if draft is None:
        return False
    session.delete(draft)
    session.flush()
    return True
