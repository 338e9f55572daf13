"""The engine and session factory, and migrations run at start (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import Row, Select, create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util.typing import TupleAny

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


class StoreError(Exception):
    """The database cannot be opened or migrated; the message is one line for the user."""


class Store:
    """What other components use: `engine` and `session()` (an `AsyncSession` factory)."""

    def __init__(self, engine: AsyncEngine, reader: Engine | None = None) -> None:
        self.engine = engine
        self.session = async_sessionmaker(engine, expire_on_commit=False)
        self.dialect = engine.dialect.name
        # SQLite only: plain (synchronous) reader connections. aiosqlite hands every cursor call
        # to its thread and back, five hand-offs for one SELECT, while the one pooled write
        # connection waits; a read done whole in one worker-thread call beside it costs one.
        self.reader = reader
        # Its own threads: the loop's default executor also carries file work (hashing uploads,
        # writing media) that can keep every worker busy for seconds.
        self._reader_threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="store-read") \
            if reader is not None else None
        # PostgreSQL: one SELECT is consistent by itself, and in autocommit it needs no
        # BEGIN/ROLLBACK round trips (SQLite starts no transaction for a SELECT anyway).
        self._autocommit: AsyncEngine | None = (
            engine.execution_options(isolation_level="AUTOCOMMIT") if self.dialect == "postgresql" else None)

    async def read_rows(self, session: AsyncSession, stmt: Select[*TupleAny],
                        params: Mapping[str, Any] | None = None) -> Sequence[Row[*TupleAny]]:
        """All rows of a read-only Core select, by the cheapest path this database has. The
        connection is held for the query only, not for the rest of the request; a session that
        already holds one (it authenticated from the database) reads on it, so a request never
        waits for a second connection while holding a first."""
        if self._reader_threads is not None:
            return await asyncio.get_running_loop().run_in_executor(self._reader_threads, self._read_sync, stmt, params)
        if self._autocommit is None or session.in_transaction():
            return (await session.execute(stmt, params)).all()
        async with self._autocommit.connect() as conn:
            return (await conn.execute(stmt, params)).all()

    def _read_sync(self, stmt: Select[*TupleAny], params: Mapping[str, Any] | None) -> Sequence[Row[*TupleAny]]:
        assert self.reader is not None
        with self.reader.connect() as conn:
            return conn.execute(stmt, params).all()

    async def migrate(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(upgrade_to_head)

    async def close(self) -> None:
        await self.engine.dispose()
        if self._reader_threads is not None:
            self._reader_threads.shutdown(wait=False, cancel_futures=True)
        if self.reader is not None:
            self.reader.dispose()


def upgrade_to_head(connection: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def _reader_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA query_only=ON")  # a reader that tried to write would be a bug: make it fail
    cur.close()


def _sqlite_reader(url: str) -> Engine | None:
    """Reader connections beside the write connection (WAL lets them run alongside it)."""
    path = url.split("///", 1)[-1]
    if not url.startswith("sqlite+aiosqlite:///") or not path or path == ":memory:" or "mode=memory" in path:
        return None  # an in-memory database is private to its one connection
    reader = create_engine("sqlite+pysqlite:///" + path, pool_size=4, max_overflow=4, pool_timeout=30,
                           connect_args={"check_same_thread": False})
    event.listen(reader, "connect", _reader_pragmas)
    return reader


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout queues writers instead of failing.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


async def open_store(url: str, *, echo: bool = False) -> Store:
    # No pre-ping (it costs a round trip per checkout); connections are recycled instead, and a
    # connection the server dropped fails one request, which the pool then replaces.
    kwargs: dict[str, Any] = {"echo": echo, "pool_recycle": 1800}
    if url.startswith("sqlite"):
        # One connection: SQLite has one writer anyway, and a second connection that finds the
        # database locked sleeps in SQLite's busy handler (up to 100 ms a try), which made write
        # latency spiky. Requests queue at the pool instead, in order.
        kwargs.update(pool_size=1, max_overflow=0, pool_timeout=30)
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    elif url.startswith("postgresql"):
        # A write holds its connection for the request; with the default 5 kept, a few dozen
        # concurrent writers made the pool open and close overflow connections all the time.
        kwargs.update(pool_size=20, max_overflow=20)
    try:
        engine = create_async_engine(url, **kwargs)
    except Exception as exc:
        raise StoreError(f"cannot use database URL: {type(exc).__name__}: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    store = Store(engine, _sqlite_reader(url) if engine.dialect.name == "sqlite" else None)
    try:
        await store.migrate()
    except Exception as exc:
        await store.close()
        raise StoreError(f"cannot open or migrate the database: {type(exc).__name__}: {exc}") from None
    log.info("store ready (%s)", store.dialect)
    return store


__all__ = ["AsyncSession", "Store", "StoreError", "open_store"]
