"""Transactions on SQLite: a transaction that only reads takes no write lock, so it
goes on while another process writes (WAL) instead of waiting for it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from models.db import make_engine, transaction


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'closeout.db'}")
    with transaction(engine) as session:
        session.connection().exec_driver_sql("CREATE TABLE t (n INTEGER)")
        session.connection().exec_driver_sql("INSERT INTO t VALUES (1)")
    yield engine
    engine.dispose()


@pytest.fixture
def other_writer(sqlite_engine: Engine) -> Iterator[sqlite3.Connection]:
    """Another process's connection, holding the write lock."""
    path = sqlite_engine.url.database
    assert path is not None
    writer = sqlite3.connect(path, isolation_level=None, timeout=0)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (2)")
    yield writer
    writer.rollback()
    writer.close()


def test_a_read_only_transaction_reads_while_another_process_writes(
    sqlite_engine: Engine, other_writer: sqlite3.Connection
) -> None:
    with transaction(sqlite_engine, read_only=True) as session:
        seen = session.connection().execute(text("SELECT n FROM t")).scalars().all()
    assert seen == [1]  # the other's uncommitted row is not seen
