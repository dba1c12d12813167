"""Budgets: a virtual key's spend per period (``KeyPolicy.budget`` per ``period``, in the prices'
currency), checked before each request and settled after it from the request's ledger row.

Spend per key and period is kept in memory: what the database held at the last read (every key at
start-up, the keys with a budget after each ledger flush) plus this process's rows not yet written.
Several instances sharing one database see each other's spend as of their last read, so a key may
overspend by what the other instances served since then (about one flush interval of their traffic)
plus the requests in flight when the budget ran out: a check before the call cannot know the cost of
the answer it lets through. Periods are calendar days and months in UTC.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from lumbung.accounts.keys import Caller
from lumbung.accounts.policy import Period
from lumbung.errors import QuotaExceeded

PERIODS: tuple[Period, ...] = ("day", "month")


def period_bounds(period: Period, at: float) -> tuple[float, float]:
    """The start and end (epoch seconds) of the UTC day or month ``at`` falls in."""
    moment = datetime.fromtimestamp(at, UTC)
    if period == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=1)
    else:
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=32)).replace(day=1)
    return start.timestamp(), end.timestamp()


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Budgets:
    """Spend per (key, period start). ``now``: the wall clock (epoch seconds)."""

    def __init__(self, currency: str = "USD", now: Callable[[], float] = time.time) -> None:
        self.currency = currency
        self.now = now
        # (key, period, period start) -> spend: in the database at the last read; noted here, not
        # yet in the database.
        self._stored: dict[tuple[str, Period, float], float] = {}
        self._unwritten: dict[tuple[str, Period, float], float] = {}
        self.watched: set[str] = set()  # keys with a budget seen by this process: re-read after flushes

    def spent(self, key: str, period: Period, at: float | None = None) -> float:
        start, _ = period_bounds(period, self.now() if at is None else at)
        return self._stored.get((key, period, start), 0.0) + self._unwritten.get((key, period, start), 0.0)

    def check(self, caller: Caller | None) -> None:
        """Refuse (429 insufficient_quota) a key whose budget for this period is spent."""
        policy = caller.policy if caller is not None else None
        if policy is None or policy.budget is None:
            return
        period = policy.period or "month"
        self.watched.add(policy.id)
        now = self.now()
        spent = self.spent(policy.id, period, now)
        if spent < policy.budget:
            return
        _, end = period_bounds(period, now)
        raise QuotaExceeded(
            f"The key {policy.name!r} has spent its budget of {policy.budget:g} {self.currency} per "
            f"{period} ({spent:.6g} {self.currency} spent); it resets at {_iso(end)}.",
            retry_after=end - now,
        )

    @staticmethod
    def _add(table: dict[tuple[str, Period, float], float], key: str, at: float, cost: float) -> None:
        for period in PERIODS:
            start, _ = period_bounds(period, at)
            table[key, period, start] = table.get((key, period, start), 0.0) + cost

    def noted(self, row: Mapping[str, Any]) -> None:
        """A ledger row was queued: its cost counts at once."""
        if row["key"] is not None and row["cost"]:
            self._add(self._unwritten, row["key"], row["at"], row["cost"])

    def written(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Queued rows are in the database now (the next read counts them)."""
        for row in rows:
            if row["key"] is not None and row["cost"]:
                self._add(self._unwritten, row["key"], row["at"], -row["cost"])

    def stored(self, period: Period, start: float, sums: Mapping[str, float], keys: Iterable[str]) -> None:
        """What the database holds for ``keys`` in the period starting at ``start`` (absent: 0)."""
        for key in keys:
            self._stored[key, period, start] = sums.get(key, 0.0)
        for table in (self._stored, self._unwritten):  # earlier periods are over: forget them
            for old in [k for k in table if k[1] == period and k[2] < start]:
                del table[old]
