"""A database that restarts under a running process costs at most the
transactions under way: pooled connections are checked when idle and replaced,
and the bot reads again on a new connection (models/db.py, bot/services.py).

These tests run a private PostgreSQL server on a free port, since they restart it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from bot.services import Services
from models import db
from models.db import make_engine, transaction
from settings import load_settings
from tests.conftest import service_missing

#: Seconds pg_ctl waits for the server to start or stop.
PG_CTL_WAIT = 60


@dataclass
class PrivateServer:
    directory: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        log = self.directory / "server.log"
        _run(
            [
                "pg_ctl",
                "-D",
                str(self.directory / "data"),
                "-l",
                str(log),
                "-w",
                "-t",
                str(PG_CTL_WAIT),
                *args,
            ]
        )

    def restart(self) -> None:
        self.pg_ctl("restart", "-m", "fast", "-o", self._options())

    def _options(self) -> str:
        return f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"

    def start(self) -> None:
        self.pg_ctl("start", "-o", self._options())


def _as_postgres(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; CI's machine runs the tests as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str]) -> None:
    subprocess.run(_as_postgres(command), check=True, capture_output=True, timeout=PG_CTL_WAIT * 2)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[PrivateServer]:
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        service_missing("PostgreSQL's initdb and pg_ctl", FileNotFoundError("not on PATH"))
    directory = Path(tempfile.mkdtemp(prefix="closeout-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    private = PrivateServer(directory, _free_port())
    try:
        _run(
            [
                "initdb",
                "-D",
                str(directory / "data"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        )
        private.start()
        yield private
    finally:
        subprocess.run(
            _as_postgres(["pg_ctl", "-D", str(directory / "data"), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=PG_CTL_WAIT,
        )
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def private_engine(server: PrivateServer) -> Iterator[Engine]:
    engine = make_engine(server.url)
    yield engine
    engine.dispose()


def _backend_pid(engine: Engine) -> int:
    with transaction(engine) as session:
        return int(session.connection().execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_idle_past_the_limit_is_checked_and_replaced_after_a_restart(
    server: PrivateServer, private_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.0)
    before = _backend_pid(private_engine)
    server.restart()
    assert _backend_pid(private_engine) != before  # no error: a new connection


def test_a_connection_used_moments_ago_is_not_pinged(
    server: PrivateServer, private_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the check, the restart reaches the next transaction: this is
    # what the bot's read-again below is for.
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 3600.0)
    _backend_pid(private_engine)
    server.restart()
    with pytest.raises(OperationalError):
        _backend_pid(private_engine)
    _backend_pid(private_engine)  # the pool was dropped: the next one connects anew


class Counted:
    """The bot's services on the private server, and a work that counts its runs."""

    def __init__(self, server: PrivateServer, engine: Engine) -> None:
        self.services = Services(
            engine=engine, settings=load_settings(DATABASE_URL=server.url, BOT_TOKEN="1:x")
        )
        self.runs = 0

    def work(self, session: Session) -> int:
        self.runs += 1
        return int(session.connection().execute(text("SELECT 1")).scalar_one())


@pytest.fixture
def counted(
    server: PrivateServer, private_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> Counted:
    # Connections are never pinged: a restart reaches the next transaction.
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 3600.0)
    return Counted(server, private_engine)


async def test_the_bots_read_runs_again_on_a_new_connection_after_a_restart(
    server: PrivateServer, counted: Counted
) -> None:
    assert await counted.services.db(counted.work, read_only=True) == 1
    server.restart()
    assert await counted.services.db(counted.work, read_only=True) == 1
    assert counted.runs == 3


async def test_a_write_is_not_run_again_after_a_lost_connection(
    server: PrivateServer, counted: Counted
) -> None:
    await counted.services.db(counted.work)
    server.restart()
    with pytest.raises(OperationalError):
        await counted.services.db(counted.work)
    assert counted.runs == 2
