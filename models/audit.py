"""The append-only, tamper-evident history (SPEC §3).

Every event carries the hash of the one before it, in one chain for the whole
deployment. Appending locks the single `chain_head` row, so two writers never
fork the chain; the head also lets `verify_chain` notice a truncated tail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from models import clock
from models.tables import ChainHead, Event

#: The previous-hash of the first event.
GENESIS = "0" * 64
#: Events read per batch while verifying, so a long history never sits in memory.
VERIFY_BATCH = 5000


def canonical(data: dict[str, Any]) -> str:
    """JSON with sorted keys and no spaces: the same data always hashes the same."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_hash(
    *,
    seq: int,
    item_number: int | None,
    actor_id: int | None,
    action: str,
    from_status: str | None,
    to_status: str | None,
    reason: str | None,
    data: str,
    created_at: datetime,
    prev_hash: str,
) -> str:
    """The sha256 of an event's content and the previous event's hash."""
    content = canonical(
        {
            "seq": seq,
            "item": item_number,
            "actor": actor_id,
            "action": action,
            "from": from_status,
            "to": to_status,
            "reason": reason,
            "data": data,
            "at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
            "prev": prev_hash,
        }
    )
    return hashlib.sha256(content.encode()).hexdigest()


def append_event(
    session: Session,
    *,
    action: str,
    item_number: int | None = None,
    actor_id: int | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> Event:
    """Append one event to the chain inside the caller's transaction.

    The caller commits; until then the chain head stays locked (PostgreSQL row
    lock; SQLite holds the database write lock from BEGIN IMMEDIATE).
    """
    head = session.exec(select(ChainHead).where(ChainHead.id == 1).with_for_update()).first()
    if head is None:
        head = ChainHead(id=1, seq=0, hash=GENESIS)
        session.add(head)
    event = Event(
        seq=head.seq + 1,
        item_number=item_number,
        actor_id=actor_id,
        action=action,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        data=canonical(data or {}),
        created_at=clock.now(),
        prev_hash=head.hash or GENESIS,
        hash="",
    )
    event.hash = _hash_of(event)
    session.add(event)
    head.seq, head.hash = event.seq, event.hash
    session.add(head)
    session.flush()
    return event


def _hash_of(event: Event) -> str:
    # The same fields whether the event is being written or checked.
    return event_hash(
        seq=event.seq,
        item_number=event.item_number,
        actor_id=event.actor_id,
        action=event.action,
        from_status=event.from_status,
        to_status=event.to_status,
        reason=event.reason,
        data=event.data,
        created_at=event.created_at,
        prev_hash=event.prev_hash,
    )


@dataclass(frozen=True)
class ChainReport:
    """The outcome of `verify_chain`: `broken` is None when the chain holds."""

    checked: int
    broken: str | None = None
    seq: int | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None


def _events(session: Session) -> Iterator[Event]:
    after = 0
    while True:
        batch = session.exec(
            select(Event).where(Event.seq > after).order_by(col(Event.seq)).limit(VERIFY_BATCH)
        ).all()
        if not batch:
            return
        yield from batch
        after = batch[-1].seq
        session.expunge_all()


def verify_chain(session: Session) -> ChainReport:
    """Check every link; name the first broken one (an edited, removed or inserted event).

    Returns a report; never raises for a broken chain.
    """
    expected_prev = GENESIS
    checked = 0
    for event in _events(session):
        expected_seq = checked + 1
        if event.seq != expected_seq:
            return ChainReport(
                checked, f"event #{expected_seq} is missing (next is #{event.seq})", expected_seq
            )
        if event.prev_hash != expected_prev:
            return ChainReport(
                checked,
                f"event #{event.seq} (id {event.id}) does not follow event #{event.seq - 1}",
                event.seq,
            )
        recomputed = _hash_of(event)
        if recomputed != event.hash:
            return ChainReport(
                checked,
                f"event #{event.seq} (id {event.id}, item #{event.item_number}, "
                f"{event.action}) was changed after it was written",
                event.seq,
            )
        expected_prev = event.hash
        checked += 1
    head = session.get(ChainHead, 1)
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    if head_seq > checked:
        return ChainReport(
            checked,
            f"the chain ends at event #{checked} but its head records #{head_seq}: "
            "events were removed from the end",
            checked + 1,
        )
    if head_seq < checked or (checked and head_hash != expected_prev):
        return ChainReport(
            checked,
            f"event #{checked} does not match the chain head: the last event was changed "
            "or one was appended outside the application",
            checked,
        )
    return ChainReport(checked)
