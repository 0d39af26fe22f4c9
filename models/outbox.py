"""The notification outbox (SPEC §5, DESIGN "One write path").

A notification is a row written in the same transaction as its cause, unique by
its key: (item, stage, due date, recipient), plus the causing event for stages
that can happen more than once (a second rejection). Inserting an existing key
does nothing, so a re-run sweep never owes a stage twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Table, any_, bindparam, cast, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session, SQLModel, col, select

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
    owed = Owed(
        stage=stage,
        item_number=item_number,
        due_date=due_date,
        recipient_id=recipient_id,
        chat_id=chat_id,
        occurrence=occurrence,
        data=data or {},
        not_before=not_before,
    )
    statement = (
        _insert(session)(Notification)
        .values(**_row(owed, clock.now()))
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(col(Notification.id))
    )
    # RETURNING, not rowcount: through the ORM session psycopg reports -1 for
    # an INSERT … ON CONFLICT DO NOTHING that inserted nothing.
    return session.execute(statement).first() is not None


@dataclass(frozen=True)
class Owed:
    """One notification to owe, as `notify` takes it; `key` is built the one way."""

    stage: str
    item_number: int | None = None
    due_date: date | None = None
    recipient_id: int | None = None
    chat_id: int | None = None
    occurrence: str | int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    not_before: datetime | None = None

    def __post_init__(self) -> None:
        if self.recipient_id is None and self.chat_id is None:
            raise ValueError("a notification needs a member or a chat")

    @property
    def key(self) -> str:
        return notification_key(
            stage=self.stage,
            item_number=self.item_number,
            due_date=self.due_date,
            recipient_id=self.recipient_id,
            chat_id=self.chat_id,
            occurrence=self.occurrence,
        )


def _insert(
    session: Session,
) -> Callable[[Table | type[SQLModel]], postgresql.Insert | sqlite.Insert]:
    # INSERT … ON CONFLICT DO NOTHING is spelled the same on both backends,
    # but SQLAlchemy builds it from the dialect's own insert().
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _row(owed: Owed, created_at: datetime) -> dict[str, Any]:
    return {
        "key": owed.key,
        "item_number": owed.item_number,
        "stage": owed.stage,
        "due_date": owed.due_date,
        "recipient_id": owed.recipient_id,
        "chat_id": owed.chat_id,
        "data": canonical(owed.data),
        "status": "pending",
        "not_before": owed.not_before,
        "attempts": 0,
        "created_at": created_at,
    }


# The outbox as a Core table: bulk statements skip the ORM's per-row work.
_TABLE: Table = Notification.__table__  # type: ignore[attr-defined]  # set by SQLAlchemy, undeclared


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def owed_keys(session: Session, item_numbers: Sequence[int], stages: Iterable[str]) -> set[str]:
    """The keys already owed (or sent) for these items in these stages, whatever the
    due date or recipient: one query by item (indexed), the numbers as one array
    parameter on PostgreSQL."""
    numbers = sorted(set(item_numbers))
    wanted = sorted(set(stages))
    if not numbers or not wanted:
        return set()
    table = _TABLE
    if _is_postgres(session):
        by_item = table.c.item_number == any_(
            bindparam("numbers", numbers, type_=ARRAY(table.c.item_number.type))
        )
    else:
        by_item = table.c.item_number.in_(numbers)
    statement = select(table.c.key).where(by_item, table.c.stage.in_(wanted))
    return set(session.connection().execute(statement).scalars())


def notify_many(session: Session, owed: Sequence[Owed]) -> dict[str, int]:
    """Owe many notifications at once, in the caller's transaction, as `notify` does one.

    One INSERT … ON CONFLICT DO NOTHING RETURNING for all the rows: on
    PostgreSQL the rows go as one array per column (unnest), on SQLite as
    multi-row VALUES batches. Returns the new rows as {key: id}; a key
    already owed (or repeated within `owed`: the first one counts) is left
    out. The insert runs on the session's connection (Core), so a
    models.delivery.OutboxWatch does not see it: hand the ids on yourself.
    """
    if not owed:
        return {}
    created_at = clock.now()
    rows: dict[str, dict[str, Any]] = {}
    for one in owed:
        row = _row(one, created_at)
        rows.setdefault(row["key"], row)
    table = _TABLE
    connection = session.connection()
    if _is_postgres(session):
        # Thousands of rows as VALUES make a statement psycopg spends seconds of
        # CPU parsing; eleven array parameters make a short one.
        columns = list(next(iter(rows.values())))
        arrays = [
            cast(
                bindparam(name, [row[name] for row in rows.values()]),
                ARRAY(table.c[name].type),
            )
            for name in columns
        ]
        source = func.unnest(*arrays).table_valued(*columns).render_derived("owed")
        statement = (
            postgresql.insert(table)
            .from_select(columns, select(*source.c))
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(table.c.key, table.c.id)
        )
        result = connection.execute(statement)
    else:
        statement = (
            sqlite.insert(table)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(table.c.key, table.c.id)
        )
        result = connection.execute(statement, list(rows.values()))
    return {key: id_ for key, id_ in result}
