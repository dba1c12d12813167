"""The state database's batched appends (``Database.append``): on SQLite a thread of its own with its
own connection; a batch is written whole or not at all, and a refused batch does not stop the next."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from lumbung.state.db import Base, Database


class Note(Base):
    __tablename__ = "test_notes"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    size: Mapped[int | None] = mapped_column(Integer, nullable=True)


async def names(db: Database) -> list[str]:
    async with db.engine.connect() as conn:
        return [row[0] for row in (await conn.execute(select(Note.name).order_by(Note.seq))).all()]


async def test_a_batch_is_appended_in_one_transaction_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = await Database.under(tmp_path).open()
    seen: list[str] = []
    connect = sqlite3.connect

    def spy(*args: object, **kwargs: object) -> sqlite3.Connection:
        seen.append(threading.current_thread().name)
        return connect(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite3, "connect", spy)
    await db.append(Note, [{"name": "a", "size": 1}, {"name": "b"}, {"size": 3, "name": "c"}])
    await db.append(Note, [])
    monkeypatch.undo()
    assert await names(db) == ["a", "b", "c"]
    assert seen and all(name.startswith("lumbung-db-append") for name in seen)
    async with db.engine.connect() as conn:
        sizes = (await conn.execute(select(Note.size).order_by(Note.seq))).scalars().all()
    assert sizes == [1, None, 3]
    await db.close()
    await db.close()  # the ledger and the app's closers may both close it
    # WAL: what was committed is in the file for a fresh reader, the appender's connection closed
    with sqlite3.connect(tmp_path / "lumbung.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert [r[0] for r in raw.execute("SELECT name FROM test_notes ORDER BY seq")] == ["a", "b", "c"]


async def test_a_refused_batch_leaves_no_row_and_the_next_batch_is_written(tmp_path: Path) -> None:
    db = await Database.under(tmp_path).open()
    await db.append(Note, [{"name": "a"}])
    with pytest.raises(sqlite3.IntegrityError):
        await db.append(Note, [{"name": "b"}, {"name": "a"}])  # the second row breaks UNIQUE
    with pytest.raises(ValueError, match="no column 'colour'"):
        await db.append(Note, [{"name": "c", "colour": "red"}])
    await db.append(Note, [{"name": "b"}, {"name": "c"}])
    assert await names(db) == ["a", "b", "c"]
    await db.close()


async def test_a_batch_waits_for_another_writer_s_lock_then_is_written(tmp_path: Path) -> None:
    db = await Database.under(tmp_path).open()
    other = sqlite3.connect(tmp_path / "lumbung.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    other.execute("INSERT INTO test_notes (name) VALUES ('theirs')")
    waiting = asyncio.create_task(db.append(Note, [{"name": "mine"}]))
    await asyncio.sleep(0.2)
    assert not waiting.done()  # busy_timeout: the appender waits for the lock (the loop does not)
    other.execute("COMMIT")
    await waiting
    other.close()
    assert await names(db) == ["theirs", "mine"]
    await db.close()
