"""SPEC §4: what a message about an item shows, read in a fixed number of queries."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, event
from sqlmodel import Session

from models.db import transaction
from models.ledger import NewEvidence, NewItem, act, attach_evidence, create_item, split_item
from models.people import actor_for
from models.summaries import Facts, summarize_many
from models.tables import Item
from models.workdays import WorkCalendar
from tests.support import District

TODAY = date(2026, 3, 2)
FACTS = Facts(today=TODAY, calendar=WorkCalendar({}), warn_days=3)


def _split_with_one_child_closed(engine: Engine, district: District) -> tuple[int, int]:
    # A committee-level problem handed down to its three branches; one of them
    # closed off, with two pieces of evidence; the parent has one of its own.
    with transaction(engine) as session:
        inspector = actor_for(session, district.members["M003"])
        parent = create_item(
            session,
            inspector,
            NewItem(
                kind="problem",
                org_id=district.orgs["C01"],
                title="党费收缴不规范",
                due_date=date(2026, 3, 20),
            ),
            today=TODAY,
        )
        assert parent.number is not None
        record = NewEvidence(kind="text", text="原始记录")
        attach_evidence(session, inspector, parent.number, record)
        children = split_item(session, inspector, parent.number, None)
        child = children[0].number
        assert child is not None
        secretary = actor_for(session, children[0].responsible_id)  # type: ignore[arg-type]
        for text in ("整改报告", "照片"):
            attach_evidence(session, secretary, child, NewEvidence(kind="text", text=text))
        act(session, secretary, child, "submit")
        act(session, inspector, child, "verify")
        return parent.number, child


def test_a_summary_shows_the_org_the_responsible_evidence_and_children_closed(
    engine: Engine, district: District
) -> None:
    parent, child = _split_with_one_child_closed(engine, district)
    with Session(engine) as session:
        items = [session.get(Item, parent), session.get(Item, child)]
        top, closed_child = summarize_many(session, items, FACTS)  # type: ignore[arg-type]
    assert (top.org_code, top.org_name) == ("C01", "城关镇党委")
    assert top.responsible_name == "李书记"  # a committee's item goes to its leader
    assert (top.evidence_count, top.children_closed, top.children_total) == (1, 1, 3)
    assert closed_child.org_code in ("B01", "B02", "B03")
    assert (closed_child.evidence_count, closed_child.children_total) == (2, 0)
    assert closed_child.status == "closed"


def test_summaries_take_the_same_queries_for_one_item_and_for_a_page(
    engine: Engine, district: District
) -> None:
    parent, _ = _split_with_one_child_closed(engine, district)
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    with Session(engine) as session:
        one = [session.get(Item, parent)]
        page = [session.get(Item, number) for number in range(parent, parent + 4)]
        event.listen(engine, "before_cursor_execute", count)
        try:
            summarize_many(session, one, FACTS)  # type: ignore[arg-type]
            for_one = len(statements)
            summarize_many(session, page, FACTS)  # type: ignore[arg-type]
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert len(statements) - for_one == for_one == 3
