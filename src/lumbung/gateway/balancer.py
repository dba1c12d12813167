"""Choosing a target within a tier: least outstanding requests (weighted), or prefix affinity by
weighted rendezvous hashing, so a shared prompt prefix keeps landing on the replica that caches it and
only ~1/n of the keys move when a replica comes or goes."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from typing import Protocol, TypeVar


class Candidate(Protocol):
    @property
    def key(self) -> str: ...

    @property
    def weight(self) -> float: ...

    @property
    def inflight(self) -> int: ...


T = TypeVar("T", bound=Candidate)


def least_outstanding(candidates: Sequence[T], rng: random.Random | None = None) -> T:
    best = min((c.inflight + 1) / c.weight for c in candidates)
    ties = [c for c in candidates if (c.inflight + 1) / c.weight == best]
    return ties[0] if len(ties) == 1 else (rng or random).choice(ties)


def _unit(key: str, target: str) -> float:
    digest = hashlib.blake2b(f"{key}\x00{target}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / 2.0**64


def by_affinity(candidates: Sequence[T], key: str) -> T:
    return max(candidates, key=lambda c: -c.weight / math.log(_unit(key, c.key)))


def affinity_key(text: str, length: int = 2048) -> str:
    """The leading part of the prompt that replicas cache; requests sharing it share a key."""
    return hashlib.blake2b(text[:length].encode(), digest_size=16).hexdigest()
