"""The usage ledger: one row per accepted request, whatever happened to it, in the state database
(SQLite under the data directory by default, PostgreSQL by ``database_url``).

It is one more sink of the request record (record.py): the boundary closes a record for every
request, and ``Ledger.sink`` queues it: no I/O on the request's path, and the row (accounts/costs.py,
~10-30 us) is made by the writer, off the request's clock; only a key with a budget has its row made
at once, so its spend counts before its next request. A task writes the queue in one transaction
(``Database.append``: on SQLite in a thread of its own) every ``flush_seconds``, or at once when
``batch_rows`` are waiting; shutdown writes what is left.

What a ``kill -9`` loses: the rows still queued (requests that ended within the last flush interval,
at most about ``batch_rows`` of them, plus the batch being written at that instant) and the requests
in flight (they never closed). What was committed stays: SQLite's WAL survives a killed process
(``synchronous=NORMAL`` gives up only the last commits on a power loss), PostgreSQL commits are
durable. docs/accounts.md says the same for operators.

Which requests get a row: those whose key was accepted (with no keys configured, every request to an
API endpoint), refused later or not; not requests refused at the key check (401/403, the access log
has them), not /health, not the operator endpoints (/admin/..., /metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Boolean, Float, Index, Integer, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from lumbung.accounts.budgets import PERIODS, Budgets, period_bounds
from lumbung.accounts.costs import Costing, row_of
from lumbung.record import RequestRecord
from lumbung.state.db import Base, Database

log = logging.getLogger(__name__)

MAX_QUEUED = 100_000  # rows kept while the database refuses writes; older ones are dropped (logged)
REREAD_SECONDS = 1.0
SHUTDOWN_TRIES = 3  # budgets re-read the spend of other instances at most this often


class UsageEntry(Base):
    """One request. ``at``: its arrival, epoch seconds (UTC); ``providers``: the targets tried, in
    order, comma-separated; ``target``: the one that answered; costs in the prices' currency."""

    __tablename__ = "usage"
    __table_args__ = (Index("ix_usage_key_at", "key", "at"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String, index=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    key: Mapped[str | None] = mapped_column(String, nullable=True)
    surface: Mapped[str] = mapped_column(String)
    method: Mapped[str] = mapped_column(String)
    path: Mapped[str] = mapped_column(String)
    route: Mapped[str | None] = mapped_column(String, nullable=True)
    model: Mapped[str | None] = mapped_column(String, nullable=True)
    providers: Mapped[str | None] = mapped_column(String, nullable=True)
    target: Mapped[str | None] = mapped_column(String, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer)
    status: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String)
    error: Mapped[str | None] = mapped_column(String, nullable=True)
    stream: Mapped[bool] = mapped_column(Boolean)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    cached_tokens: Mapped[int] = mapped_column(Integer)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float)
    cost: Mapped[float | None] = mapped_column(Float, nullable=True)
    reference_cost: Mapped[float | None] = mapped_column(Float, nullable=True)


class Ledger:
    """The queue and its writer for one app. ``route_of``: the route a model name resolves to."""

    def __init__(
        self,
        db: Database,
        costing: Costing,
        route_of: Callable[[str], str | None],
        *,
        budgets: Budgets | None = None,
        flush_seconds: float = 0.2,
        batch_rows: int = 500,
    ) -> None:
        self.db = db
        self.costing = costing
        self.route_of = route_of
        self.budgets = budgets
        self.flush_seconds = flush_seconds
        self.batch_rows = batch_rows
        self.queued: list[dict[str, Any] | RequestRecord] = []  # rows, or closed records to make rows of
        self.written = 0
        self.dropped = 0
        self._full = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._reread_at = 0.0

    def sink(self, rec: RequestRecord) -> None:
        """The record's sink: its row, queued (microseconds, no I/O)."""
        if rec.caller is None or rec.admin:
            return
        policy = rec.caller.policy
        if self.budgets is not None and policy is not None and policy.budget is not None:
            row = row_of(rec, self.costing, self.route_of)
            self.budgets.noted(row)
            self.queued.append(row)
        else:
            self.queued.append(rec)
        if len(self.queued) >= self.batch_rows:
            self._full.set()

    async def start(self) -> None:
        await self.db.open()
        if self.budgets is not None:
            await self._read_spend(None)
        self._task = asyncio.create_task(self._run(), name="usage-ledger")

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self.flush_seconds)
            self._full.clear()
            try:
                await self.flush()
                if self.budgets is not None and self.budgets.watched:
                    now = time.monotonic()
                    if now >= self._reread_at:
                        self._reread_at = now + REREAD_SECONDS
                        await self._read_spend(self.budgets.watched)
            except Exception:
                # The database is away (locked, restarting): the rows wait for the next turn.
                log.exception("usage ledger: writing failed; %d rows wait", len(self.queued))

    async def flush(self) -> int:
        """Write every queued row in one transaction; the number written."""
        async with self._lock:
            queued, self.queued = self.queued, []
            if not queued:
                return 0
            batch = [self._row(item) for item in queued]
            try:
                await self.db.append(UsageEntry, batch)
            except BaseException:
                self.queued = [*batch, *self.queued]
                if len(self.queued) > MAX_QUEUED:
                    lost = len(self.queued) - MAX_QUEUED
                    self.dropped += lost
                    log.error("usage ledger: %d rows dropped (the database refused writes too long)", lost)
                    del self.queued[:lost]
                raise
            self.written += len(batch)
            if self.budgets is not None:
                self.budgets.written(batch)
            return len(batch)

    def _row(self, item: dict[str, Any] | RequestRecord) -> dict[str, Any]:
        return item if isinstance(item, dict) else row_of(item, self.costing, self.route_of)

    async def _read_spend(self, keys: set[str] | None) -> None:
        """The spend the database holds for ``keys`` (None: every key) in the current periods."""
        assert self.budgets is not None
        now = self.budgets.now()
        async with self.db.engine.connect() as conn:
            for period in PERIODS:
                start, _ = period_bounds(period, now)
                query = select(UsageEntry.key, func.sum(UsageEntry.cost)).where(
                    UsageEntry.at >= start, UsageEntry.key.is_not(None)
                )
                if keys is not None:
                    query = query.where(UsageEntry.key.in_(sorted(keys)))
                result = await conn.execute(query.group_by(UsageEntry.key))
                sums = {str(key): float(total or 0.0) for key, total in result.all()}
                self.budgets.stored(period, start, sums, sums.keys() if keys is None else keys)

    async def aclose(self) -> None:
        """Stop the writer and write what is left (graceful shutdown). The writer is asked to stop,
        never cancelled: a cancellation landing after a commit but before the transaction's end would
        put its rows back in the queue, to be written twice."""
        if self._task is not None:
            self._stopping = True
            self._full.set()
            await self._task
            self._task = None
        for attempt in range(SHUTDOWN_TRIES):
            try:
                await self.flush()
                break
            except Exception:
                if attempt + 1 == SHUTDOWN_TRIES:
                    log.exception("usage ledger: %d rows could not be written at shutdown", len(self.queued))
                else:
                    await asyncio.sleep(0.5)  # the database is busy (locked, restarting): once more
        await self.db.close()
