"""Virtual keys for tests: made in the data directory's real database, as ``lumbung keys create``
makes them, before or while an app over the same directory serves."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from lumbung.accounts.policy import KeyPolicy
from lumbung.accounts.store import KeyStore
from lumbung.state.db import Database


@contextlib.asynccontextmanager
async def key_store(home: Path) -> AsyncIterator[KeyStore]:
    """The key store of ``home``, through a database connection of its own (another process's view)."""
    db = await Database.under(home).open()
    try:
        yield KeyStore(db)
    finally:
        await db.close()


async def make_key(home: Path, name: str, **scope: Any) -> tuple[str, str]:
    """A new key in ``home``: (its id, its secret)."""
    async with key_store(home) as store:
        key, secret = await store.create(KeyPolicy(id="", name=name, **scope))
    return key.id, secret


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}
