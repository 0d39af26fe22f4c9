"""The follow-up actors end to end: the sweep's pushes and its inquiry notice reach the chats."""

from __future__ import annotations

import io
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import docx
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from models import clock
from models.db import transaction
from models.holidays import load_calendar
from models.ledger import NewItem, create_item
from models.people import actor_for
from models.recurrence import set_rrule
from models.tables import Item, Notification
from tasks.followups import recur, sweep
from tests.support import District
from tests.tasks.support import Delivery, bot_messages, new_item, rows, settled, wait_until

ZONE = ZoneInfo("Asia/Shanghai")


def _workdays_ago(engine: Engine, n: int) -> date:
    today = clock.today(ZONE)
    with Session(engine) as session:
        calendar = load_calendar(session)
    day = today
    while calendar.workdays_between(day, today) < n:
        day -= timedelta(days=1)
    return day


def test_the_sweep_actor_escalates_and_the_leaders_get_the_inquiry_notice(
    stub_delivery: Delivery, district: District, people: dict[str, int]
) -> None:
    engine = stub_delivery.engine
    number = new_item(
        engine, district, "B01", "三会一课记录不全", _workdays_ago(engine, 12), "M005"
    )
    sweep.send()
    ladder = ("overdue", "escalate-1", "escalate-2")

    def swept() -> list[int]:
        return [r.id for r in rows(engine) if r.stage in ladder and r.id is not None]

    ids = wait_until(lambda: len(swept()) == 5 and swept(), what="the sweep's rows")
    wait_until(settled(engine, ids), what="the sweep's rows to be sent")
    assert {r.status for r in rows(engine, ids)} == {"sent"}
    with Session(engine) as session:
        item = session.get(Item, number)
        assert item is not None and item.escalation_level == 2
    # The leader of C01 (G01 has none) gets the push and the notice as a document.
    messages = bot_messages(stub_delivery.server, people["M002"])
    documents = [m.document for m in messages if m.document is not None]
    assert len(documents) == 1 and documents[0].file_name is not None
    assert documents[0].file_name.startswith("约谈函询通知书-B01-")
    table = docx.Document(io.BytesIO(documents[0].data)).tables[0]
    assert [row.cells[0].text for row in table.rows[1:]] == [f"#{number}"]
    assert any(f"#{number}" in (m.plain_text or "") for m in messages)

    # Running it again owes and sends nothing new.
    sent = len(rows(engine))
    sweep.send()
    stub_delivery.rt.broker.join("default")
    assert len(rows(engine)) == sent


def test_the_recur_actor_creates_the_week_s_occurrences_and_tells_the_responsible(
    stub_delivery: Delivery, district: District, people: dict[str, int]
) -> None:
    engine = stub_delivery.engine
    with transaction(engine) as session:
        duty = create_item(
            session,
            None,
            NewItem(kind="responsibility", org_id=district.orgs["B01"], title="每日安全巡查"),
        )
        assert duty.number is not None
        set_rrule(session, actor_for(session, district.members["M005"]), duty.number, "FREQ=DAILY")
    recur.send()
    stub_delivery.rt.broker.join("default")
    with Session(engine) as session:
        tasks = session.exec(select(Item).where(Item.kind == "task")).all()
        assert len(tasks) == 8  # today and the 7 days ahead
        assigned = session.exec(
            select(Notification.id).where(
                col(Notification.item_number).in_([t.number for t in tasks])
            )
        ).all()
    wait_until(settled(engine, [i for i in assigned if i is not None]), what="the assigned pushes")
    assert bot_messages(stub_delivery.server, people["M005"])
