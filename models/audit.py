"""The append-only, tamper-evident history (SPEC §3).

Every event carries the hash of the one before it, in one chain for the whole
deployment. Appending locks the single `chain_head` row, so two writers never
fork the chain; the head also lets `verify_chain` notice a truncated tail.
`append_events` appends many at once (one lock, one multi-row INSERT), as the
sweep does with a batch's escalations; `append_event` is the one-event case.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, insert, update
from sqlalchemy import select as sa_select
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


@dataclass(frozen=True)
class NewEvent:
    """An event to append: what happened to which item, by whom (None: the system)."""

    action: str
    item_number: int | None = None
    actor_id: int | None = None
    from_status: str | None = None
    to_status: str | None = None
    reason: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


_HEAD: Table = ChainHead.__table__  # type: ignore[attr-defined]  # set by SQLAlchemy, undeclared


def append_events(session: Session, events: Sequence[NewEvent]) -> list[int]:
    """Append the events to the chain, in order, inside the caller's transaction.

    Returns their positions in the chain (`Event.seq`). Locks the chain head
    first: the caller commits, and until then the head stays locked
    (PostgreSQL row lock; SQLite holds the database write lock from BEGIN
    IMMEDIATE). The events and the head are written with Core statements, so
    no ORM object is left in the session and the head is always read afresh.
    """
    if not events:
        return []
    # What the caller added (the item an event names) is written first, as before.
    session.flush()
    head = session.execute(
        sa_select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
    ).first()
    seq, prev_hash = (head.seq, head.hash or GENESIS) if head is not None else (0, GENESIS)
    created_at = clock.now()
    rows: list[dict[str, Any]] = []
    for new in events:
        seq += 1
        data = canonical(dict(new.data))
        digest = event_hash(
            seq=seq,
            item_number=new.item_number,
            actor_id=new.actor_id,
            action=new.action,
            from_status=new.from_status,
            to_status=new.to_status,
            reason=new.reason,
            data=data,
            created_at=created_at,
            prev_hash=prev_hash,
        )
        rows.append(
            {
                "seq": seq,
                "item_number": new.item_number,
                "actor_id": new.actor_id,
                "action": new.action,
                "from_status": new.from_status,
                "to_status": new.to_status,
                "reason": new.reason,
                "data": data,
                "created_at": created_at,
                "prev_hash": prev_hash,
                "hash": digest,
            }
        )
        prev_hash = digest
    session.execute(insert(Event), rows)
    if head is None:
        session.execute(insert(_HEAD).values(id=1, seq=seq, hash=prev_hash))
    else:
        session.execute(update(_HEAD).where(_HEAD.c.id == 1).values(seq=seq, hash=prev_hash))
    return [row["seq"] for row in rows]


def append_event(
    session: Session,
    *,
    action: str,
    item_number: int | None = None,
    actor_id: int | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> int:
    """Append one event (see `append_events`); returns its position in the chain."""
    [seq] = append_events(
        session,
        [
            NewEvent(
                action=action,
                item_number=item_number,
                actor_id=actor_id,
                from_status=from_status,
                to_status=to_status,
                reason=reason,
                data=data or {},
            )
        ],
    )
    return seq


def _hash_of(event: Event) -> str:
    # The fields append_events hashed, read back from the stored event.
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
