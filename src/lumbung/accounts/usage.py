"""Reading the usage ledger: requests, tokens, spend and savings grouped by key, route, model or
provider, since a point in time. ``lumbung usage`` and ``GET /admin/usage`` print the same summary.

Savings count only requests whose route has a reference price: what that traffic would have cost on
the API it left, less what it cost here.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import case, func, select

from lumbung.accounts.ledger import UsageEntry
from lumbung.errors import InvalidRequest
from lumbung.state.db import Database

By = Literal["key", "route", "model", "provider", "surface", "outcome"]
BY: tuple[By, ...] = ("key", "route", "model", "provider", "surface", "outcome")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass
class UsageLine:
    """One group. ``errors``: requests that ended in an error, a cut-off or a hang-up; ``savings``:
    ``reference`` less the spend of the requests that have a reference price."""

    group: str | None
    requests: int = 0
    errors: int = 0
    failovers: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    spend: float = 0.0
    reference: float = 0.0
    savings: float = 0.0

    def add(self, other: UsageLine) -> None:
        for name in (
            "requests",
            "errors",
            "failovers",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.spend += other.spend
        self.reference += other.reference
        self.savings += other.savings

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """``7d``, ``24h``, ``30m`` (that long ago), an ISO date or time (UTC unless it says), or None."""
    if not text:
        return None
    now = time.time() if now is None else now
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", text.strip())
    if match:
        return now - float(match[1]) * _UNITS[match[2]]
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidRequest(
            f"since: {text!r} is neither a duration (7d, 24h, 30m) nor an ISO date or time", param="since"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


async def summarize(db: Database, by: By = "key", since: float | None = None) -> list[UsageLine]:
    """The ledger's rows since ``since`` (epoch seconds; None: all), grouped ``by``, the most
    spending first; a group for rows with no value (no key, no route) has ``group`` None."""
    if by not in BY:
        raise InvalidRequest(f"by: must be one of {', '.join(BY)}", param="by")
    column = UsageEntry.target if by == "provider" else getattr(UsageEntry, by)
    failed = UsageEntry.outcome.in_(("error", "cut_off", "hang_up"))
    referenced = UsageEntry.reference_cost.is_not(None)
    query = select(
        column,
        func.count(),
        func.sum(case((failed, 1), else_=0)),
        func.sum(case((UsageEntry.outcome == "failed_over", 1), else_=0)),
        func.sum(UsageEntry.prompt_tokens),
        func.sum(UsageEntry.completion_tokens),
        func.sum(UsageEntry.cached_tokens),
        func.sum(func.coalesce(UsageEntry.cost, 0.0)),
        func.sum(func.coalesce(UsageEntry.reference_cost, 0.0)),
        func.sum(case((referenced, func.coalesce(UsageEntry.cost, 0.0)), else_=0.0)),
    ).group_by(column)
    if since is not None:
        query = query.where(UsageEntry.at >= since)
    async with db.engine.connect() as conn:
        result = await conn.execute(query)
        found = result.all()
    lines: dict[str | None, UsageLine] = {}
    for group, requests, errors, failovers, prompt, completion, cached, spend, ref, ref_spend in found:
        if by == "provider" and group is not None:
            group = str(group).partition("/")[0]
        line = UsageLine(
            group,
            int(requests),
            int(errors or 0),
            int(failovers or 0),
            int(prompt or 0),
            int(completion or 0),
            int(cached or 0),
            float(spend or 0.0),
            float(ref or 0.0),
            float(ref or 0.0) - float(ref_spend or 0.0),
        )
        if group in lines:
            lines[group].add(line)
        else:
            lines[group] = line
    return sorted(lines.values(), key=lambda x: (-x.spend, -x.requests, x.group or ""))


def total(lines: list[UsageLine]) -> UsageLine:
    whole = UsageLine("total")
    for line in lines:
        whole.add(line)
    return whole
