"""SPEC §3: history is append-only and tamper-evident."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, text
from sqlmodel import Session, col, select

from models.audit import NewEvent, append_event, append_events, event_hash, verify_chain
from models.db import transaction
from models.ledger import NewItem, act, create_item
from models.people import actor_for
from models.tables import Event
from tests.support import District


def _history(engine: Engine, district: District) -> int:
    with transaction(engine) as session:
        inspector = actor_for(session, district.members["M003"])
        item = create_item(
            session,
            inspector,
            NewItem(
                kind="problem",
                org_id=district.orgs["B01"],
                title="台账缺失",
                due_date=date(2026, 12, 31),
            ),
        )
        assert item.number is not None
        secretary = actor_for(session, district.members["M005"])
        act(session, secretary, item.number, "acknowledge")
        act(session, secretary, item.number, "submit")
        act(session, inspector, item.number, "reject", reason="证据不足")
        return item.number


def _verify(engine: Engine) -> tuple[bool, str | None, int | None]:
    with Session(engine) as session:
        report = verify_chain(session)
    return report.ok, report.broken, report.seq


def test_an_untouched_history_verifies(engine: Engine, district: District) -> None:
    _history(engine, district)
    assert _verify(engine) == (True, None, None)


def test_an_event_edited_behind_the_applications_back_is_named(
    engine: Engine, district: District
) -> None:
    _history(engine, district)
    with engine.begin() as connection:
        connection.execute(text("UPDATE event SET reason = '已整改' WHERE seq = 4"))
    ok, broken, seq = _verify(engine)
    assert not ok and seq == 4
    assert broken is not None and "event #4" in broken and "changed" in broken


def test_an_event_removed_from_the_middle_is_named(engine: Engine, district: District) -> None:
    _history(engine, district)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM event WHERE seq = 2"))
    ok, broken, seq = _verify(engine)
    assert not ok and seq == 2 and broken is not None and "missing" in broken


def test_events_removed_from_the_end_are_noticed(engine: Engine, district: District) -> None:
    _history(engine, district)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM event WHERE seq = 4"))
    ok, broken, _ = _verify(engine)
    assert not ok and broken is not None and "removed from the end" in broken


def test_a_rehashed_edit_still_breaks_the_next_link(engine: Engine, district: District) -> None:
    _history(engine, district)
    with Session(engine) as session:
        event = session.exec(select(Event).where(Event.seq == 2)).one()
        forged = event_hash(
            seq=2,
            item_number=event.item_number,
            actor_id=event.actor_id,
            action="verify",
            from_status=event.from_status,
            to_status="closed",
            reason=None,
            data=event.data,
            created_at=event.created_at,
            prev_hash=event.prev_hash,
        )
        event.action, event.to_status, event.hash = "verify", "closed", forged
        session.add(event)
        session.commit()
    ok, broken, seq = _verify(engine)
    assert not ok and seq == 3 and broken is not None and "does not follow" in broken


def test_events_appended_together_follow_the_chain_in_their_order(
    engine: Engine, district: District
) -> None:
    number = _history(engine, district)
    with transaction(engine) as session:
        seqs = append_events(
            session,
            [NewEvent(action="note", item_number=number, data={"n": n}) for n in range(3)],
        )
        assert append_events(session, []) == []
    assert seqs == [5, 6, 7]
    with Session(engine) as session:
        notes = session.exec(
            select(Event.seq, Event.data).where(Event.action == "note").order_by(col(Event.seq))
        ).all()
    assert notes == [(5, '{"n":0}'), (6, '{"n":1}'), (7, '{"n":2}')]
    assert _verify(engine) == (True, None, None)


def test_a_long_lived_session_appends_after_what_others_appended_meanwhile(
    engine: Engine, district: District
) -> None:
    # The sweep's session commits per batch and keeps its objects (expire_on_commit
    # off), while the bot appends events between two batches.
    number = _history(engine, district)
    with Session(engine, expire_on_commit=False) as sweep:
        assert append_event(sweep, action="note", item_number=number) == 5
        sweep.commit()
        with transaction(engine) as bot:
            assert append_event(bot, action="note", item_number=number) == 6
        assert append_event(sweep, action="note", item_number=number) == 7
        sweep.commit()
    assert _verify(engine) == (True, None, None)
