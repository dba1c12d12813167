"""What a virtual key may do: the one description every part of the request path reads.

The key store (accounts/store.py) makes a ``KeyPolicy`` for a virtual key; the boundary puts it on the
request's ``Caller``; scopes (routes, models, egress), limits (rpm, tpm, concurrency), budgets and
recording each read their own fields from it. Keys from the config file (``api_keys``) have no
policy: they may do everything, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Period = Literal["day", "month"]


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """One virtual key's scopes and limits; never its secret. Empty scope tuples mean "any"."""

    id: str  # stable id of the key (not the secret, not its digest): what ledgers and limits count by
    name: str
    routes: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    egress: tuple[
        str, ...
    ] = ()  # regions its traffic may leave to (ISO codes); empty: the route's own policy
    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens (in + out) per minute
    max_concurrent: int | None = None
    budget: float | None = None  # spend allowed per ``period``, in the price table's currency
    period: Period | None = None
    expires: datetime | None = None  # aware (UTC)
    record: float | None = None  # fraction of its requests recorded for replay (0..1); None: not recorded
