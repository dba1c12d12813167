"""Choosing within a tier: least outstanding (weighted) and prefix affinity (rendezvous hashing)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from lumbung.gateway.balancer import affinity_key, by_affinity, least_outstanding


@dataclass(eq=False)
class C:
    key: str
    weight: float = 1.0
    inflight: int = 0


def test_least_outstanding_picks_the_idlest() -> None:
    a, b, c = C("a", inflight=3), C("b", inflight=1), C("c", inflight=2)
    assert least_outstanding([a, b, c]) is b


def test_least_outstanding_respects_weights() -> None:
    heavy, light = C("heavy", weight=3.0, inflight=2), C("light", weight=1.0, inflight=1)
    assert least_outstanding([heavy, light]) is heavy  # 3/3 < 2/1


def test_ties_are_spread() -> None:
    rng = random.Random(1)
    a, b = C("a"), C("b")
    picks = Counter(least_outstanding([a, b], rng).key for _ in range(200))
    assert 60 < picks["a"] < 140


def test_affinity_is_stable_and_moves_few_keys_when_a_replica_leaves() -> None:
    replicas = [C(f"r{i}") for i in range(4)]
    keys = [affinity_key(f"system prompt {i}") for i in range(400)]
    before = {k: by_affinity(replicas, k).key for k in keys}
    assert before == {k: by_affinity(replicas, k).key for k in keys}
    assert len(set(before.values())) == 4
    after = {k: by_affinity(replicas[:3], k).key for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert all(before[k] == "r3" for k in moved)  # only the departed replica's keys move


def test_affinity_follows_weights() -> None:
    big, small = C("big", weight=3.0), C("small", weight=1.0)
    picks = Counter(by_affinity([big, small], affinity_key(str(i))).key for i in range(2000))
    assert 0.68 < picks["big"] / 2000 < 0.82


def test_affinity_key_uses_the_leading_prefix() -> None:
    shared = "x" * 3000
    assert affinity_key(shared + "question one") == affinity_key(shared + "question two")
    assert affinity_key("a" + shared) != affinity_key("b" + shared)
