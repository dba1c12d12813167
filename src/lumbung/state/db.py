"""The database: SQLite (WAL) under the data directory by default, any SQLAlchemy async URL otherwise.

Tables are created on first open; each module that keeps state declares its tables on ``Base``.

A column added to a table later must be nullable: ``open`` adds it to a database made before it
(``ALTER TABLE ... ADD COLUMN``, rows kept, the new column NULL in them). Why no migration tool: the
schema has only grown by nullable columns so far; a change that is not additive is when one is due.

``append`` writes a batch of rows in one transaction off the event loop. On SQLite it runs in one
thread of its own, on a plain ``sqlite3`` connection with the same pragmas: through aiosqlite and
SQLAlchemy's ORM layer a 100-row batch cost the loop ~1.7 ms of CPU (and the GIL while it ran, the
latency of every request then in flight); the thread's ``executemany`` leaves it ~0.3 ms, and sqlite3
releases the GIL while it writes. Other databases go through the async engine as before.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, event, insert, inspect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.schema import CreateColumn

from lumbung.errors import ConfigError

log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    pass


def sqlite_url(home: Path) -> str:
    return f"sqlite+aiosqlite:///{home / 'lumbung.db'}"


class Database:
    """One engine and session factory; ``open`` creates missing tables, ``close`` releases connections."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(url)
        if url.startswith("sqlite"):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.session = async_sessionmaker(self.engine, expire_on_commit=False)
        self._appender = _SqliteAppender.of(url)

    @classmethod
    def under(cls, home: Path) -> Database:
        home.mkdir(parents=True, exist_ok=True)
        return cls(sqlite_url(home))

    @classmethod
    def at(cls, url: str | None, home: Path) -> Database:
        """The state database: ``url`` (the ``database_url`` setting), or SQLite under ``home``."""
        return cls(url) if url else cls.under(home)

    async def open(self) -> Database:
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            await conn.run_sync(_add_missing_columns)
        return self

    async def append(self, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
        """Insert ``rows`` into ``model``'s table in one transaction: all of them, or none and the
        database's error raised."""
        if not rows:
            return
        if self._appender is not None:
            await self._appender.append(model, rows)
            return
        async with self.engine.begin() as conn:
            await conn.execute(insert(model), list(rows))

    async def close(self) -> None:
        if self._appender is not None:
            await self._appender.close()
        await self.engine.dispose()


class _SqliteAppender:
    """Batched inserts into one SQLite file from one thread with its own connection."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lumbung-db-append")
        self._conn: sqlite3.Connection | None = None  # opened (and only used) in the pool's thread
        self._statements: dict[tuple[str, tuple[str, ...]], str] = {}
        self._closed = False

    @classmethod
    def of(cls, url: str) -> _SqliteAppender | None:
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
            return None
        return cls(parsed.database)

    async def append(self, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._write, model, rows)

    def _write(self, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, isolation_level=None)  # transactions by hand
            _sqlite_pragmas(self._conn, None)
        table: Table = model.__table__  # type: ignore[assignment]
        names: list[str] = []
        for row in rows:
            names.extend(name for name in row if name not in names)
        key = (table.name, tuple(names))
        sql = self._statements.get(key)
        if sql is None:
            unknown = [name for name in names if name not in table.columns]
            if unknown:
                raise ValueError(f"no column {unknown[0]!r} in table {table.name!r}")
            columns = ", ".join(f'"{name}"' for name in names)
            marks = ", ".join("?" for _ in names)
            sql = self._statements[key] = f'INSERT INTO "{table.name}" ({columns}) VALUES ({marks})'
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(sql, [tuple(row.get(name) for name in names) for row in rows])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # a failed COMMIT may have ended it: keep the first error
                conn.execute("ROLLBACK")
            raise

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        """Close the connection and end the thread; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._conn is not None:  # never written (a CLI reading usage): no thread to start
            await asyncio.get_running_loop().run_in_executor(self._pool, self._close)
        self._pool.shutdown(wait=True)


def _add_missing_columns(conn: Connection) -> None:
    """Columns declared since the database was made, added to its tables (existing rows keep all
    their data and get NULL in the new column)."""
    inspector = inspect(conn)
    for table in Base.metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable or column.primary_key:
                raise ConfigError(
                    f"the database's table {table.name!r} lacks column {column.name!r}, which cannot be "
                    "added to existing rows; move the old database aside"
                )
            log.info("adding column %s.%s to the database", table.name, column.name)
            ddl = CreateColumn(column).compile(dialect=conn.dialect)
            name = conn.dialect.identifier_preparer.format_table(table)
            conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {ddl}")
            for index in table.indexes:
                if column in index.columns.values():
                    index.create(conn, checkfirst=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers go on while a writer commits; several server processes may share the file.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
