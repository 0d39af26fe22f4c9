"""The notification outbox (SPEC §5, DESIGN "One write path").

A notification is a row written in the same transaction as its cause, unique by
its key: (item, stage, due date, recipient), plus the causing event for stages
that can happen more than once (a second rejection). Inserting an existing key
does nothing, so a re-run sweep never owes a stage twice.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from models import clock
from models.audit import canonical
from models.tables import Notification


def notification_key(
    *,
    stage: str,
    item_number: int | None = None,
    due_date: date | None = None,
    recipient_id: int | None = None,
    chat_id: int | None = None,
    occurrence: str | int | None = None,
) -> str:
    """The unique key of a notification; equal keys are the same notification."""
    recipient = f"m{recipient_id}" if recipient_id is not None else f"c{chat_id}"
    parts = [
        str(item_number) if item_number is not None else "-",
        stage,
        due_date.isoformat() if due_date else "-",
        recipient,
    ]
    if occurrence is not None:
        parts.append(str(occurrence))
    return ":".join(parts)


def notify(
    session: Session,
    *,
    stage: str,
    item_number: int | None = None,
    due_date: date | None = None,
    recipient_id: int | None = None,
    chat_id: int | None = None,
    occurrence: str | int | None = None,
    data: dict[str, Any] | None = None,
    not_before: datetime | None = None,
) -> bool:
    """Owe one notification, in the caller's transaction.

    Returns True when the row is new, False when that key was already owed
    (or sent): the insert is a no-op then, whichever process got there first.
    """
    if recipient_id is None and chat_id is None:
        raise ValueError("a notification needs a member or a chat")
    values = {
        "key": notification_key(
            stage=stage,
            item_number=item_number,
            due_date=due_date,
            recipient_id=recipient_id,
            chat_id=chat_id,
            occurrence=occurrence,
        ),
        "item_number": item_number,
        "stage": stage,
        "due_date": due_date,
        "recipient_id": recipient_id,
        "chat_id": chat_id,
        "data": canonical(data or {}),
        "status": "pending",
        "not_before": not_before,
        "attempts": 0,
        "created_at": clock.now(),
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Notification).values(**values).on_conflict_do_nothing(index_elements=["key"])
    result = session.execute(statement)
    return bool(result.rowcount)
