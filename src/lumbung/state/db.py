"""The database: SQLite (WAL) under the data directory by default, any SQLAlchemy async URL otherwise.

Tables are created on first open; each module that keeps state declares its tables on ``Base``.
A column added to a table later must be nullable: ``open`` adds it to a database made before it
(``ALTER TABLE ... ADD COLUMN``, rows kept, the new column NULL in them). Why no migration tool: the
schema has only grown by nullable columns so far; a change that is not additive is when one is due.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event, inspect
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

    async def close(self) -> None:
        await self.engine.dispose()


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
