"""The usage ledger's rows, read back from the database a test server wrote."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from lumbung.accounts.ledger import UsageEntry
from lumbung.state.db import Database


async def ledger_rows(url: str) -> list[dict[str, Any]]:
    """Every row, oldest first, as dicts of its columns."""
    db = await Database(url).open()
    try:
        async with db.engine.connect() as conn:
            result = await conn.execute(select(UsageEntry.__table__).order_by(UsageEntry.seq))
            return [dict(row._mapping) for row in result]
    finally:
        await db.close()
