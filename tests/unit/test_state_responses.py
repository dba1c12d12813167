"""Stored Responses in a real SQLite database: each belongs to the key that created it, and a
database made before owners were kept gains the column without losing a row."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lumbung.accounts.keys import OPEN, KeyRing
from lumbung.state.db import Database
from lumbung.state.responses import ResponseStore
from lumbung.types import Message

RING = KeyRing(["sk-alice", "sk-bob"], ["sk-operator"])
ALICE, BOB, OPERATOR = RING.check("sk-alice"), RING.check("sk-bob"), RING.check("sk-operator")


def body(response_id: str) -> dict[str, object]:
    return {"id": response_id, "object": "response", "created_at": 1_700_000_000, "model": "m"}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ResponseStore]:
    db = await Database.under(tmp_path).open()
    yield ResponseStore(db)
    await db.close()


async def test_a_response_is_seen_only_by_its_key_and_operators(store: ResponseStore, tmp_path: Path) -> None:
    await store.save(body("resp_a"), [{"type": "message"}], [Message("user", "hi")], ALICE)
    for caller in (ALICE, OPERATOR):
        found = await store.get("resp_a", caller)
        assert found is not None and found.conversation[0].content == "hi"
    assert await store.get("resp_a", BOB) is None
    assert not await store.delete("resp_a", BOB)
    assert await store.get("resp_a", ALICE) is not None  # still there
    with sqlite3.connect(tmp_path / "lumbung.db") as conn:
        rows = conn.execute("SELECT * FROM responses").fetchall()
    conn.close()
    assert rows[0][-1] == hashlib.sha256(b"sk-alice").hexdigest()  # the owner: a digest of the key
    assert "sk-alice" not in repr(rows)  # never the key itself
    assert await store.delete("resp_a", ALICE)
    assert await store.get("resp_a", OPERATOR) is None


async def test_an_operator_may_delete_any_and_no_keys_means_everything_is_open(store: ResponseStore) -> None:
    await store.save(body("resp_b"), [], [], BOB)
    assert await store.get("resp_b", OPEN) is not None
    assert await store.delete("resp_b", OPERATOR)
    await store.save(body("resp_open"), [], [], OPEN)  # made with no keys configured: nobody's
    assert (
        await store.get("resp_open", OPEN) is not None and await store.get("resp_open", OPERATOR) is not None
    )
    assert await store.get("resp_open", ALICE) is None  # once keys are on, only operators see it


def old_database(path: Path) -> None:
    """The responses table as lumbung made it before responses had owners, with one row."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE responses (id VARCHAR(64) NOT NULL PRIMARY KEY, created_at INTEGER, "
            "model VARCHAR(256), previous_response_id VARCHAR(64), body TEXT, input_items TEXT, "
            "conversation TEXT)"
        )
        conn.execute("CREATE INDEX ix_responses_created_at ON responses (created_at)")
        conn.execute(
            "INSERT INTO responses VALUES ('resp_old', 1700000000, 'm', NULL, "
            """'{"id": "resp_old", "model": "m"}', '[]', '[{"role": "user", "content": "before"}]')"""
        )
    conn.close()


async def test_an_older_database_gains_the_owner_column_and_keeps_its_rows(tmp_path: Path) -> None:
    old_database(tmp_path / "lumbung.db")
    db = await Database.under(tmp_path).open()
    try:
        store = ResponseStore(db)
        old = await store.get("resp_old", OPERATOR)
        assert old is not None and old.body["id"] == "resp_old" and old.conversation[0].content == "before"
        assert await store.get("resp_old", ALICE) is None  # nobody's: operators only once keys are on
        await store.save(body("resp_new"), [], [], ALICE)
        assert await store.get("resp_new", ALICE) is not None and await store.get("resp_new", BOB) is None
    finally:
        await db.close()
    again = await Database.under(tmp_path).open()  # opening again adds nothing and loses nothing
    try:
        assert await ResponseStore(again).get("resp_old", OPEN) is not None
    finally:
        await again.close()
    with sqlite3.connect(tmp_path / "lumbung.db") as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(responses)")]
    conn.close()
    assert columns[-1] == "owner" and columns.count("owner") == 1
