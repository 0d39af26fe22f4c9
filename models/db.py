"""Engines, sessions and schema upgrades for SQLite and PostgreSQL.

The caller owns the transaction: data-access functions take a session and
never commit; a handler, actor or command commits once.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import resources
from typing import Any, TypeVarTuple

from sqlalchemy import Connection, CursorResult, Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.selectable import TypedReturnsRows
from sqlmodel import Session, create_engine

Ts = TypeVarTuple("Ts")

#: PostgreSQL connections an engine keeps open (at most; opened as needed),
#: beyond which up to 10 more are opened and closed again.
POOL_SIZE = 16
#: Seconds a pooled PostgreSQL connection may have been idle and still be used
#: without a ping first (`_check_idle_connections`).
PING_AFTER_IDLE = 2.0
_LAST_USED = "closeout_last_used"
#: Seconds a SQLite writer waits for another's lock before giving up.
SQLITE_BUSY_TIMEOUT = 30


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for `url`; SQLite gets foreign keys, WAL and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # Take the write lock at BEGIN, so read-then-write transactions (the
        # event chain) cannot interleave between two processes; a transaction
        # that only reads (`transaction(..., read_only=True)`) takes none, so
        # readers do not queue behind each other or behind a writer (WAL).
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # Up to POOL_SIZE connections are kept: past QueuePool's default 5, a worker's
    # eight threads (or the bot's) opened and closed an overflow connection on
    # nearly every transaction.
    engine = create_engine(url, echo=echo, pool_size=POOL_SIZE)
    _check_idle_connections(engine)
    return engine


def _check_idle_connections(engine: Engine) -> None:
    # SQLAlchemy's pool_pre_ping pings on every checkout: a round trip per
    # transaction, a tenth of a bot read's time. A connection idle past
    # PING_AFTER_IDLE is pinged, and replaced if the server is gone (a restart,
    # a failover, a dropped idle connection); one in use moments ago is
    # trusted. If the server went in between, the first statement fails, and
    # SQLAlchemy then invalidates every pooled connection, so only transactions
    # already under way fail, as they would with pre-ping; the bot reads again
    # (bot/services.py) and jobs are retried.
    def fresh(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_LAST_USED] = time.monotonic()

    def checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        if time.monotonic() - record.info.get(_LAST_USED, 0.0) <= PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool drops this connection and checks out a new one.
            raise DisconnectionError(f"pooled connection is gone: {error}") from error

    event.listen(engine, "connect", fresh)
    event.listen(engine, "checkin", fresh)
    event.listen(engine, "checkout", checkout)


#: The execution option that marks a read-only transaction (see `transaction`).
READ_ONLY = "closeout_read_only"


def _sqlite_begin(connection: Connection) -> None:
    read_only = connection.get_execution_options().get(READ_ONLY, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # Let SQLAlchemy's "begin" event issue BEGIN itself (see make_engine).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@functools.lru_cache(maxsize=8)
def _read_only(engine: Engine) -> Engine:
    # The engine marked for read-only transactions, sharing its pool: made
    # once per engine, since making it cost a bot read a fiftieth of its CPU.
    return engine.execution_options(**{READ_ONLY: True})


@contextmanager
def transaction(bind: Engine | Connection, *, read_only: bool = False) -> Iterator[Session]:
    """A session whose work is committed once at the end, or rolled back on error.

    On a Connection (not in a transaction): a transaction of its own on it, so
    a job that runs several keeps one connection checked out. `read_only` (on an
    Engine): the work only reads; on SQLite it begins without taking the write lock.
    """
    if read_only and isinstance(bind, Engine):
        bind = _read_only(bind)
    with Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def read(
    session: Session,
    statement: TypedReturnsRows[*Ts],
    params: Mapping[str, Any] | None = None,
) -> CursorResult[*Ts]:
    """Rows of a prebuilt statement of columns, run on the session's connection.

    Past the ORM's per-call compile and loading steps, which cost more than
    the statement itself on the bot's reads (several per update). What the
    session holds unflushed is flushed first, as `Session.execute` would, so
    the rows include this transaction's own changes.
    """
    session.flush()  # returns at once when nothing is pending
    return session.connection().execute(statement, params)


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    script_location = resources.files("migrations")
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Create or upgrade the schema of the database at `url`."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)
