"""SPEC §3 through the one write path: items, transitions, events and the outbox."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from models.audit import verify_chain
from models.db import transaction
from models.ledger import (
    InputRefused,
    NewEvidence,
    NewItem,
    act,
    add_milestone,
    add_note,
    attach_evidence,
    children_progress,
    create_item,
    decide_extension,
    request_extension,
    split_item,
)
from models.people import actor_for
from models.permissions import PermissionRefused
from models.states import TransitionRefused
from models.tables import Event, Item, Notification
from tests.support import District

TODAY = date(2026, 3, 2)


def _new(district: District, org: str = "B01", **fields: object) -> NewItem:
    values: dict[str, object] = {
        "kind": "problem",
        "org_id": district.orgs[org],
        "title": "三会一课记录不全",
        "due_date": date(2026, 3, 20),
    }
    values.update(fields)
    return NewItem(**values)  # type: ignore[arg-type]


def _create(engine: Engine, district: District, by: str = "M003", **fields: object) -> int:
    with transaction(engine) as session:
        item = create_item(
            session, actor_for(session, district.members[by]), _new(district, **fields), today=TODAY
        )
        assert item.number is not None
        return item.number


def _do(
    engine: Engine,
    district: District,
    who: str,
    number: int,
    action: str,
    reason: str | None = None,
) -> Item:
    with transaction(engine) as session:
        return act(
            session, actor_for(session, district.members[who]), number, action, reason=reason
        )


def _stages(engine: Engine, number: int) -> list[tuple[str, int | None]]:
    with Session(engine) as session:
        rows = session.exec(
            select(Notification).where(Notification.item_number == number).order_by(Notification.id)
        ).all()
        return [(row.stage, row.recipient_id) for row in rows]


def test_a_new_problem_goes_to_the_secretary_of_its_org(engine: Engine, district: District) -> None:
    number = _create(engine, district)
    with Session(engine) as session:
        item = session.get(Item, number)
        assert item is not None
        assert item.responsible_id == district.members["M005"]
        assert item.status == "open" and item.creator_id == district.members["M003"]
    assert _stages(engine, number) == [("assigned", district.members["M005"])]


def test_every_change_writes_an_event_in_the_same_transaction(
    engine: Engine, district: District
) -> None:
    number = _create(engine, district)
    _do(engine, district, "M005", number, "acknowledge")
    _do(engine, district, "M005", number, "submit")
    _do(engine, district, "M003", number, "verify")
    with Session(engine) as session:
        actions = session.exec(
            select(Event.action).where(Event.item_number == number).order_by(Event.seq)
        ).all()
        assert actions == ["create", "acknowledge", "submit", "verify"]
        assert verify_chain(session).ok


def test_a_refused_change_writes_nothing(engine: Engine, district: District) -> None:
    number = _create(engine, district)
    with pytest.raises(TransitionRefused):
        _do(engine, district, "M003", number, "verify")
    with Session(engine) as session:
        item = session.get(Item, number)
        assert item is not None and item.status == "open" and item.version == 1
        assert len(session.exec(select(Event)).all()) == 1


def test_submission_tells_the_inspectors_of_the_scope(engine: Engine, district: District) -> None:
    number = _create(engine, district)
    _do(engine, district, "M005", number, "submit")
    submitted = [who for stage, who in _stages(engine, number) if stage == "submitted"]
    assert submitted == [district.members["M003"], district.members["M004"]]


def test_rejection_needs_a_reason_counts_and_tells_the_responsible(
    engine: Engine, district: District
) -> None:
    number = _create(engine, district)
    _do(engine, district, "M005", number, "submit")
    with pytest.raises(TransitionRefused):
        _do(engine, district, "M003", number, "reject", reason="  ")
    item = _do(engine, district, "M003", number, "reject", reason="整改不到位")
    assert item.status == "in_progress" and item.rejections == 1
    _do(engine, district, "M005", number, "submit")
    _do(engine, district, "M003", number, "reject", reason="照片不清楚")
    rejected = [who for stage, who in _stages(engine, number) if stage == "rejected"]
    assert rejected == [district.members["M005"]] * 2


def test_nobody_verifies_what_they_submitted(engine: Engine, district: District) -> None:
    # M011 is both the secretary of B04 and an inspector whose group covers it.
    number = _create(engine, district, by="M013", org="B04")
    _do(engine, district, "M011", number, "submit")
    with pytest.raises(PermissionRefused) as refused:
        _do(engine, district, "M011", number, "verify")
    assert refused.value.code == "own_submission"
    assert _do(engine, district, "M013", number, "verify").status == "closed"


def test_a_secretary_of_another_branch_cannot_touch_the_item(
    engine: Engine, district: District
) -> None:
    number = _create(engine, district)
    with pytest.raises(PermissionRefused):
        _do(engine, district, "M007", number, "submit")


def test_reopen_by_a_leader_counts_a_relapse(engine: Engine, district: District) -> None:
    number = _create(engine, district)
    _do(engine, district, "M005", number, "submit")
    _do(engine, district, "M003", number, "verify")
    item = _do(engine, district, "M002", number, "reopen", reason="回头看发现问题反弹")
    assert (item.status, item.relapses, item.closed_at) == ("in_progress", 1, None)


def test_a_title_over_200_characters_is_refused_and_nothing_written(
    engine: Engine, district: District
) -> None:
    with pytest.raises(InputRefused) as refused:
        _create(engine, district, title="长" * 201)
    assert refused.value.code == "too_long"
    with Session(engine) as session:
        assert session.exec(select(Item)).all() == []
        assert session.exec(select(Event)).all() == []


def test_a_due_date_in_the_past_is_refused_for_a_person(engine: Engine, district: District) -> None:
    with pytest.raises(InputRefused) as refused:
        _create(engine, district, due_date=date(2026, 2, 1))
    assert refused.value.code == "due_in_past"


def test_a_stale_button_is_refused(engine: Engine, district: District) -> None:
    number = _create(engine, district)
    _do(engine, district, "M005", number, "acknowledge")
    with pytest.raises(InputRefused) as refused, transaction(engine) as session:
        act(session, actor_for(session, district.members["M005"]), number, "submit", version=1)
    assert refused.value.code == "stale"


def test_notes_milestones_and_evidence_do_not_need_a_status_change(
    engine: Engine, district: District
) -> None:
    number = _create(engine, district)
    with transaction(engine) as session:
        secretary = actor_for(session, district.members["M005"])
        add_note(session, secretary, number, "已召开专题会议")
        add_milestone(session, secretary, number, "补齐会议记录", date(2026, 3, 10))
        attach_evidence(
            session, secretary, number, NewEvidence(kind="photo", file_id="F1", file_unique_id="U1")
        )
    with Session(engine) as session:
        item = session.get(Item, number)
        assert item is not None and item.status == "in_progress"
        actions = session.exec(
            select(Event.action).where(Event.item_number == number).order_by(Event.seq)
        ).all()
    assert actions == ["create", "note", "plan", "attach"]


def test_an_approved_extension_moves_the_due_date_and_counts(
    engine: Engine, district: District
) -> None:
    number = _create(engine, district)
    with transaction(engine) as session:
        request_extension(
            session,
            actor_for(session, district.members["M005"]),
            number,
            date(2026, 4, 10),
            "需要采购设备",
            today=TODAY,
        )
    asked = [who for stage, who in _stages(engine, number) if stage == "extension_requested"]
    assert asked == [district.members["M003"], district.members["M004"]]
    with transaction(engine) as session:
        decide_extension(
            session, actor_for(session, district.members["M003"]), number, approve=True
        )
    with Session(engine) as session:
        item = session.get(Item, number)
        assert item is not None
        assert (item.due_date, item.extensions) == (date(2026, 4, 10), 1)


def test_split_hands_an_item_down_and_the_parent_closes_with_its_last_child(
    engine: Engine, district: District
) -> None:
    number = _create(engine, district, org="C01", title="党费收缴不规范")
    with transaction(engine) as session:
        children = split_item(session, actor_for(session, district.members["M003"]), number, None)
        child_numbers = [child.number for child in children]
    assert len(child_numbers) == 3  # B01, B02, B03: every branch below the committee
    for child in child_numbers:
        assert child is not None
        with Session(engine) as session:
            item = session.get(Item, child)
            assert item is not None
            responsible = item.responsible_id
        secretary = next(code for code, mid in district.members.items() if mid == responsible)
        _do(engine, district, secretary, child, "submit")
        with Session(engine) as session:
            parent = session.get(Item, number)
            assert parent is not None and parent.status == "in_progress"
        _do(engine, district, "M003", child, "verify")
    with Session(engine) as session:
        parent = session.get(Item, number)
        assert parent is not None and parent.status == "closed"
        assert children_progress(session, number) == (3, 3)


def test_split_refuses_an_org_outside_the_subtree(engine: Engine, district: District) -> None:
    number = _create(engine, district, org="G01")
    with pytest.raises(InputRefused) as refused, transaction(engine) as session:
        split_item(session, actor_for(session, district.members["M003"]), number, ["B03"])
    assert refused.value.code == "not_a_child_org"
