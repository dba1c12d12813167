"""The database: SQLite (WAL) under the data directory by default, any SQLAlchemy async URL otherwise.

Tables are created on first open; each module that keeps state declares its tables on ``Base``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase


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

    async def open(self) -> Database:
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        return self

    async def close(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers go on while a writer commits; several server processes may share the file.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
