"""Fixtures for the delivery tests: the local Bot API server in a thread, the
in-process broker or the real Redis broker with a real dramatiq Worker, each
test in its own Redis key namespace (removed afterwards, and nothing else)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import Engine

from sandbox.botapi import BotApiServer, Limits, running_server
from settings import load_settings
from tasks import load_actors
from tasks.broker import setup_broker, start_embedded_worker
from tasks.limiter import Rates
from tests.conftest import service_missing
from tests.support import District
from tests.tasks.support import Delivery, bind, make_settings

#: The machine's Redis; each test uses keys under a namespace of its own.
REDIS_URL = os.environ.get("CLOSEOUT_TEST_REDIS", "redis://127.0.0.1:6379/0")
#: Worker threads of the in-process worker in these tests.
TEST_THREADS = 4

# Actor modules declare their actors on the configured broker when imported,
# and the test modules import them at collection: a placeholder broker for
# that. Each test's fixture sets up its own (load_actors binds the actors to it).
setup_broker(load_settings(REDIS_URL=""))


@pytest.fixture
def botapi() -> Iterator[BotApiServer]:
    """The local Bot API server (flood limits off unless a test sets them)."""
    with running_server(limits=Limits(enabled=False)) as server:
        yield server


@pytest.fixture
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_missing("Redis", exc)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    name = f"closeout-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{name}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


@pytest.fixture
def people(engine: Engine, district: District, botapi: BotApiServer) -> dict[str, int]:
    """Every member but M006 and M008 bound to a simulated Telegram user: chat ids by code."""
    return bind(
        engine,
        district,
        botapi,
        [code for code in district.members if code not in ("M006", "M008")],
    )


@pytest.fixture
def stub_delivery(engine: Engine, database_url: str, botapi: BotApiServer) -> Iterator[Delivery]:
    """Delivery on the in-process broker (REDIS_URL unset), with a worker in this process."""
    rt = load_actors(make_settings(database_url, botapi), engine=engine)
    worker = start_embedded_worker(rt.broker, threads=TEST_THREADS)
    yield Delivery(rt, worker, botapi)
    worker.stop(timeout=5000)
    rt.broker.close()


@pytest.fixture
def start_delivery(
    engine: Engine, database_url: str, botapi: BotApiServer, redis_url: str, namespace: str
) -> Iterator[Callable[..., Delivery]]:
    """Start delivery on the real Redis broker with a real dramatiq Worker in this
    process: `start(rates=…, bundle_max=…, QUIET_HOURS=…)`; stopped at the end."""
    running: list[Delivery] = []

    def start(
        *, rates: Rates | None = None, bundle_max: int | None = None, **overrides: Any
    ) -> Delivery:
        for earlier in running:
            earlier.worker.stop(timeout=5000)
        settings = make_settings(database_url, botapi, redis_url, **overrides)
        rt = load_actors(
            settings, engine=engine, namespace=namespace, rates=rates, bundle_max=bundle_max
        )
        running.append(Delivery(rt, start_embedded_worker(rt.broker, threads=TEST_THREADS), botapi))
        return running[-1]

    yield start
    for started in running:
        started.worker.stop(timeout=5000)
        started.rt.broker.close()


@pytest.fixture
def redis_delivery(start_delivery: Callable[..., Delivery]) -> Delivery:
    """Delivery on the real Redis broker, with a real dramatiq Worker in this process."""
    return start_delivery()
