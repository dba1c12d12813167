"""One request's ledger row, from its record: who, where, what it cost, and how it ended.

Outcomes, one per request: ``ok``; ``failed_over`` (answered, after one or more targets failed);
``hang_up`` (the client left first); ``cut_off`` (no answer, and a provider refused the account or
region on the way); ``error`` (any other failure: the ``error`` column has its code).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lumbung.config.prices import Prices
from lumbung.record import AttemptNote, RequestRecord
from lumbung.types import Usage

HANG_UPS = frozenset({"client_disconnected", "client_closed_request"})
CUT_OFF = "provider_cut_off"
NOT_FAILED = (None, "cancelled")  # an attempt that answered, or was closed before its end


def outcome(rec: RequestRecord) -> str:
    if rec.status == 499 or rec.error in HANG_UPS:
        return "hang_up"
    if rec.error is not None or rec.status >= 400:
        if rec.target is None and any(a.error == CUT_OFF for a in rec.attempts):
            return "cut_off"
        return "error"
    if any(a.error not in NOT_FAILED for a in rec.attempts):
        return "failed_over"
    return "ok"


def key_of(rec: RequestRecord) -> str | None:
    """What the ledger counts a request by: the virtual key's id, or a config-file key's digest
    (its first 16 hex digits, as ``sha256:...``); None with no keys configured."""
    caller = rec.caller
    if caller is None:
        return None
    if caller.policy is not None:
        return caller.policy.id
    return f"sha256:{caller.owner[:16]}" if caller.owner else None


class Costing:
    """Prices applied to a record. ``parallel``: the sequences a local model runs at once, which
    share its hourly cost."""

    def __init__(self, prices: Prices, parallel: int = 1) -> None:
        self.prices = prices
        self.parallel = max(1, parallel)
        self.priced = bool(prices.targets)

    def attempt(self, note: AttemptNote) -> float | None:
        price = self.prices.of(note.target)
        if price is None:
            return None
        if price.per_hour is not None:
            if note.started is None or note.ended is None:
                return 0.0
            return price.per_hour * (note.ended - note.started) / 3600 / self.parallel
        usage = note.usage
        if usage is None:
            return 0.0
        return price.tokens(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)

    def cost(self, rec: RequestRecord) -> float | None:
        """What every attempt of the request cost (failed ones too: a provider bills what it served);
        None when no target it tried has a price."""
        if not self.priced:
            return None
        total: float | None = None
        for note in rec.attempts:
            spent = self.attempt(note)
            if spent is not None:
                total = (total or 0.0) + spent
        return total

    def reference(self, usage: Usage | None, route: str | None) -> float | None:
        """What a request's answer (``usage``) would have cost on the API its route left."""
        price = self.prices.routes.get(route) if route is not None else None
        if price is None or usage is None:
            return None
        return price.tokens(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)


def row_of(rec: RequestRecord, costing: Costing, route_of: Callable[[str], str | None]) -> dict[str, Any]:
    """The ledger row of a closed record (its columns: accounts/ledger.py)."""
    usage = rec.usage
    route = route_of(rec.model) if rec.model else None
    ttft = rec.first_token_seconds
    return {
        "request_id": rec.id,
        "at": rec.at,
        "key": key_of(rec),
        "surface": rec.api,
        "method": rec.method,
        "path": rec.path,
        "route": route,
        "model": rec.model,
        "providers": ",".join(a.target for a in rec.attempts) or None,
        "target": rec.target,
        "attempts": len(rec.attempts),
        "status": rec.status,
        "outcome": outcome(rec),
        "error": rec.error,
        "stream": rec.stream,
        "prompt_tokens": usage.prompt_tokens if usage else (rec.prompt_tokens or 0),
        "completion_tokens": usage.completion_tokens if usage else (rec.completion_tokens or 0),
        "cached_tokens": usage.cached_tokens if usage else 0,
        "ttft_ms": round(ttft * 1000, 1) if ttft is not None else None,
        "latency_ms": rec.latency_ms or 0.0,
        "cost": costing.cost(rec),
        "reference_cost": costing.reference(usage, route),
    }
