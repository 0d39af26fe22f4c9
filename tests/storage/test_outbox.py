"""Owing notifications in bulk, on SQLite and PostgreSQL: each key once, as `notify` owes one."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import Session, select

from models import clock
from models.db import transaction
from models.outbox import Owed, notify, notify_many
from models.tables import Notification
from tests.support import District


def test_owing_many_writes_each_new_key_once_and_returns_its_id(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    m = district.members
    with transaction(engine) as session:
        assert notify(session, stage="digest", recipient_id=m["M001"])
    later = datetime(2026, 5, 18, 1, 0, tzinfo=UTC)
    owed = [
        Owed(stage="digest", recipient_id=m["M001"]),  # owed already
        Owed(stage="digest", recipient_id=m["M002"], data={"n": 1}),
        Owed(stage="digest", recipient_id=m["M002"], data={"n": 2}),  # the same key: first counts
        Owed(stage="bulletin", chat_id=-1001234567890, occurrence="20260518", not_before=later),
    ]
    with transaction(engine) as session:
        ids = notify_many(session, owed)
    assert sorted(ids) == sorted([owed[1].key, owed[3].key])
    with Session(engine) as session:
        rows = {row.key: row for row in session.exec(select(Notification))}
    assert len(rows) == 3
    member_row, chat_row = rows[owed[1].key], rows[owed[3].key]
    assert member_row.id == ids[owed[1].key] and chat_row.id == ids[owed[3].key]
    assert (member_row.recipient_id, member_row.chat_id, json.loads(member_row.data)) == (
        m["M002"],
        None,
        {"n": 1},
    )
    assert (chat_row.recipient_id, chat_row.chat_id, chat_row.not_before) == (
        None,
        -1001234567890,
        later,
    )
    assert {(row.status, row.attempts, row.created_at) for row in rows.values()} == {
        ("pending", 0, frozen_clock.current)
    }
    with transaction(engine) as session:
        assert notify_many(session, owed) == {}
