"""Shared fixtures: databases on SQLite and PostgreSQL, the clock, the fixture district.

Storage tests take `engine`, which runs each of them once on SQLite and once on
the machine's PostgreSQL (a database of its own per run, dropped at the end).
With CLOSEOUT_REQUIRE_SERVICES=1 (CI) a missing server fails instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from models import clock
from models.db import make_engine, upgrade
from tests.support import District, load_district

#: The machine's PostgreSQL: trust auth, database `test`.
POSTGRES_ADMIN_URL = os.environ.get(
    "CLOSEOUT_TEST_POSTGRES", "postgresql+psycopg://root@127.0.0.1:5432/test"
)
REQUIRE_SERVICES = os.environ.get("CLOSEOUT_REQUIRE_SERVICES") == "1"
#: Tables emptied between PostgreSQL tests, children first.
_TABLES = ", ".join(
    (
        "attachment",
        "spot_check",
        "lease",
        "card",
        "draft",
        "notification",
        "event",
        "chain_head",
        "evidence",
        "extension",
        "milestone",
        "item",
        "invite",
        "group_scope",
        "group_member",
        "inspection_group",
        "member",
        "org",
        "holiday",
        "meta",
    )
)


def service_missing(what: str, error: Exception) -> None:
    """Skip on a laptop without the service; fail in CI, where nothing may skip."""
    message = f"{what} is not reachable: {error}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (CLOSEOUT_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, migrated, dropped afterwards."""
    name = f"closeout_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server"
        admin.dispose()
        service_missing("PostgreSQL", exc)
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database URL: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "closeout.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def frozen_clock() -> Iterator[clock.FrozenClock]:
    """The clock stands at 2026-03-02 09:00 Beijing time (a Monday) until moved."""
    frozen = clock.FrozenClock(datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    clock.set_clock(frozen)
    yield frozen
    clock.set_clock(None)


@pytest.fixture
def district(engine: Engine) -> District:
    """The fixture district loaded into the test's database."""
    return load_district(engine)
