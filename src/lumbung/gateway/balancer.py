"""Choosing a target within a tier.

Without a prompt key: least outstanding requests over weight. A target that reports its own load (a
vLLM replica's fresh metrics) counts what the server says it holds when that is more than lumbung
sent it (other gateways share the replica), and each request in its waiting queue counts twice: it
waits for a place before it even starts.

With a key (``prefix_affinity``): consistent hashing with bounded loads (Mirrokni, Thorup and
Zadimoghaddam, 2018). Each key ranks the targets by weighted rendezvous hashing, so a shared prompt
prefix keeps landing on the replica that caches it and only ~1/n of the keys move when a replica comes
or goes; the first target in that order whose load stays within ``load_factor`` times its weighted
share of the tier's requests takes it, so a hot prefix spills to its next replica instead of piling
up on one.

Either way, targets that report themselves full (a long waiting queue, a KV cache nearly all in use)
are passed over while any other has room.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from typing import Protocol, TypeVar

from lumbung.engines.vllm_metrics import ReplicaLoad

DEFAULT_LOAD_FACTOR = 1.25


class Candidate(Protocol):
    @property
    def key(self) -> str: ...

    @property
    def weight(self) -> float: ...

    @property
    def inflight(self) -> int: ...


class Reporting(Candidate, Protocol):
    """A candidate that may know its server's own view of its load."""

    @property
    def load(self) -> ReplicaLoad | None:
        """Fresh metrics, or None (none, or stale: then only ``inflight`` counts)."""
        ...

    @property
    def saturated(self) -> bool: ...


T = TypeVar("T", bound=Candidate)
R = TypeVar("R", bound=Reporting)


def least_outstanding(candidates: Sequence[T], rng: random.Random | None = None) -> T:
    best = min((c.inflight + 1) / c.weight for c in candidates)
    ties = [c for c in candidates if (c.inflight + 1) / c.weight == best]
    return ties[0] if len(ties) == 1 else (rng or random).choice(ties)


def _unit(key: str, target: str) -> float:
    digest = hashlib.blake2b(f"{key}\x00{target}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / 2.0**64


def _score(key: str, candidate: Candidate) -> float:
    return -candidate.weight / math.log(_unit(key, candidate.key))


def by_affinity(candidates: Sequence[T], key: str) -> T:
    return max(candidates, key=lambda c: _score(key, c))


def affinity_key(text: str, length: int = 2048) -> str:
    """The leading part of the prompt that replicas cache; requests sharing it share a key."""
    return hashlib.blake2b(text[:length].encode(), digest_size=16).hexdigest()


def outstanding(candidate: Reporting) -> int:
    """Requests the target holds: lumbung's own count, or the server's when it reports more."""
    load = candidate.load
    if load is None:
        return candidate.inflight
    return max(candidate.inflight, load.running + load.waiting)


def queued(candidate: Reporting) -> int:
    """Requests waiting in the target's own queue for a place: as it last said, or, once it is known
    how many it runs at once, what it holds beyond that (its metrics are up to a scrape old, lumbung's
    own count is current)."""
    load = candidate.load
    if load is None:
        return 0
    if load.slots is None:
        return load.waiting
    return max(load.waiting, outstanding(candidate) - load.slots)


def cost(candidate: Reporting) -> float:
    """What one more request would weigh on the target, per unit of weight."""
    load = candidate.load
    queued = load.waiting if load is not None else 0
    kv = (load.kv_usage or 0.0) if load is not None else 0.0  # under one request: breaks ties only
    return (outstanding(candidate) + queued + 1 + kv) / candidate.weight


def least_loaded(candidates: Sequence[R], rng: random.Random | None = None) -> R:
    costs = [cost(c) for c in candidates]
    best = min(costs)
    ties = [c for c, value in zip(candidates, costs, strict=True) if value == best]
    return ties[0] if len(ties) == 1 else (rng or random).choice(ties)


def bounded_affinity(candidates: Sequence[R], key: str, load_factor: float = DEFAULT_LOAD_FACTOR) -> R:
    """The first target in ``key``'s rendezvous order that stays within its bounded share."""
    loads = {id(c): outstanding(c) for c in candidates}
    total = sum(loads.values()) + 1  # with the request being placed
    weights = sum(c.weight for c in candidates)
    shortest = min(queued(c) for c in candidates)
    for candidate in sorted(candidates, key=lambda c: _score(key, c), reverse=True):
        share = math.ceil(load_factor * total * candidate.weight / weights)
        if loads[id(candidate)] + 1 <= share and queued(candidate) <= shortest:
            return candidate
    return least_loaded(candidates)  # unreachable: the shares add up to at least ``total``


def choose(
    candidates: Sequence[R],
    key: str | None,
    rng: random.Random | None = None,
    load_factor: float = DEFAULT_LOAD_FACTOR,
) -> R:
    """The tier's pick: full targets only when all are full, then by key or by least load."""
    open_ = [c for c in candidates if not c.saturated] or list(candidates)
    if key is None:
        return least_loaded(open_, rng)
    return bounded_affinity(open_, key, load_factor)
