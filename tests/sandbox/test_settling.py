"""Settling before the sandbox's clock moves on: what is owed by now has left; a job
the queue holds for later is not waited for (its delay runs in real time, however
far the clock moves), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import dramatiq
import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from dramatiq.errors import QueueJoinTimeout
from sqlalchemy import Engine

from models import clock
from models.db import transaction
from models.delivery import mark_sent
from models.tables import Notification
from sandbox.runner import DELIVERY_QUEUE, settle_deliveries
from tests.support import District
from tests.tasks.support import owe

#: Long enough for a settle that should succeed; a failing one waits only this.
TIMEOUT = 5.0  # seconds
#: A settle that should not succeed gives up after this.
SHORT = 0.3  # seconds


def _delivery_broker() -> StubBroker:
    """A broker with a delivery queue and its `deliver` actor, which does nothing."""
    stub = StubBroker()

    @dramatiq.actor(broker=stub, queue_name=DELIVERY_QUEUE, max_retries=0)
    def deliver(*ids: int) -> None:
        pass

    return stub


@pytest.fixture
def broker() -> Iterator[StubBroker]:
    """A broker with a delivery queue and a running worker."""
    stub = _delivery_broker()
    worker = Worker(stub, worker_threads=1, worker_timeout=50)
    worker.start()
    yield stub
    worker.stop()
    stub.close()


def _owe(engine: Engine, district: District, *, not_before: timedelta | None = None) -> int:
    """A pending row, that may go `not_before` from now (at once if None)."""
    owed = owe(engine, stage="spotcheck", recipient_id=district.members["M003"], data={"text": "x"})
    if not_before is not None:
        with transaction(engine) as session:
            row = session.get(Notification, owed)
            assert row is not None
            row.not_before = clock.now() + not_before
    return owed


def test_settling_leaves_a_job_held_for_later_to_its_time(
    broker: StubBroker, engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    broker.get_actor("deliver").send_with_options(args=(1,), delay=60_000)

    assert settle_deliveries(broker, engine, timeout=TIMEOUT)
    with pytest.raises(QueueJoinTimeout):  # what settling used to wait for
        broker.join(DELIVERY_QUEUE, timeout=int(SHORT * 1000))


def test_settling_waits_for_a_pending_row_that_may_go_now(
    broker: StubBroker, engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    owed = _owe(engine, district)

    assert not settle_deliveries(broker, engine, timeout=SHORT)
    with transaction(engine) as session:
        mark_sent(session, [owed], message_id=1, now=clock.now())
    assert settle_deliveries(broker, engine, timeout=TIMEOUT)


def test_settling_waits_for_a_row_a_chat_window_defers_by_a_second(
    broker: StubBroker, engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    _owe(engine, district, not_before=timedelta(seconds=1))

    assert not settle_deliveries(broker, engine, timeout=SHORT)


def test_settling_leaves_a_row_held_for_later_to_its_time(
    broker: StubBroker, engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    _owe(engine, district, not_before=timedelta(minutes=10))  # a 429's retry_after, say

    assert settle_deliveries(broker, engine, timeout=TIMEOUT)


def test_settling_waits_for_a_job_in_the_queue(
    engine: Engine, district: District, frozen_clock: clock.FrozenClock
) -> None:
    stub = _delivery_broker()
    stub.get_actor("deliver").send(1)  # no worker takes it

    assert not settle_deliveries(stub, engine, timeout=SHORT)
    stub.close()
