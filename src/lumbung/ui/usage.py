"""The usage ledger over time, for the dashboard's charts: requests, tokens, spend and savings per
time bucket and group (key, route, model, provider). The totals per group are ``GET /admin/usage``
(accounts/usage.py); this is the same ledger table read in buckets, the few biggest groups kept apart
and the rest summed as ``other`` so a chart stays readable."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select

from lumbung.accounts.ledger import UsageEntry
from lumbung.accounts.usage import BY, By
from lumbung.errors import InvalidRequest
from lumbung.state.db import Database

BUCKETS = 24  # bars per chart
TOP = 5  # groups drawn apart; the rest are "other"
SERIES = ("requests", "tokens", "spend", "savings")


@dataclass
class Series:
    since: float
    step: float
    groups: list[str | None]
    # series name -> group -> one value per bucket
    values: dict[str, dict[str | None, list[float]]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "step": self.step,
            "buckets": [round(self.since + i * self.step, 3) for i in range(BUCKETS)],
            "groups": self.groups,
            "series": {
                name: [
                    {"group": g, "values": [round(v, 6) for v in self.values[name][g]]} for g in self.groups
                ]
                for name in SERIES
            },
        }


async def series(db: Database, by: By, since: float, now: float | None = None) -> Series:
    if by not in BY:
        raise InvalidRequest(f"by: must be one of {', '.join(BY)}", param="by")
    now = time.time() if now is None else now
    step = max(1.0, (now - since) / BUCKETS)
    column = UsageEntry.target if by == "provider" else getattr(UsageEntry, by)
    bucket = func.floor((UsageEntry.at - since) / step)
    referenced = UsageEntry.reference_cost.is_not(None)
    cost = func.coalesce(UsageEntry.cost, 0.0)
    query = (
        select(
            bucket,
            column,
            func.count(),
            func.sum(UsageEntry.prompt_tokens + UsageEntry.completion_tokens),
            func.sum(cost),
            func.sum(func.coalesce(UsageEntry.reference_cost, 0.0))
            - func.sum(case((referenced, cost), else_=0.0)),
        )
        .where(UsageEntry.at >= since)
        .group_by(bucket, column)
    )
    async with db.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    per: dict[str | None, dict[str, list[float]]] = {}
    for index, group, requests, tokens, spend, savings in rows:
        i = min(BUCKETS - 1, max(0, math.floor(float(index))))
        if by == "provider" and group is not None:
            group = str(group).partition("/")[0]
        lines = per.setdefault(group, {name: [0.0] * BUCKETS for name in SERIES})
        for name, value in zip(SERIES, (requests, tokens, spend, savings), strict=True):
            lines[name][i] += float(value or 0)
    ranked = sorted(per, key=lambda g: (-sum(per[g]["spend"]), -sum(per[g]["requests"]), g or ""))
    kept: list[str | None] = list(ranked[:TOP])
    if len(ranked) > TOP:
        rest = {name: [0.0] * BUCKETS for name in SERIES}
        for g in ranked[TOP:]:
            for name in SERIES:
                rest[name] = [a + b for a, b in zip(rest[name], per[g][name], strict=True)]
        per["other"] = rest
        kept.append("other")
    out = Series(since, step, kept)
    out.values = {name: {g: per[g][name] for g in kept} for name in SERIES}
    return out
