"""Choosing within a tier: least outstanding (weighted), prefix affinity (rendezvous hashing) with
bounded loads, and the load vLLM replicas report (queue, KV cache, full)."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from lumbung.engines.vllm_metrics import ReplicaLoad, parse_metrics
from lumbung.gateway.balancer import affinity_key, bounded_affinity, by_affinity, choose, least_outstanding


@dataclass(eq=False)
class C:
    key: str
    weight: float = 1.0
    inflight: int = 0
    load: ReplicaLoad | None = None
    saturated: bool = False


VLLM_TEXT = """# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{model_name="m"}} {running}
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{model_name="m"}} {waiting}
"""


def said(running: int = 0, waiting: int = 0, kv: float | None = 0.1) -> ReplicaLoad:
    return ReplicaLoad(running, waiting, kv, None, sleeping=False, scraped_at=0.0)


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


def test_without_reports_the_pick_is_least_outstanding() -> None:
    a, b, c = C("a", inflight=3), C("b", inflight=1), C("c", inflight=2)
    assert choose([a, b, c], None) is b


def test_a_replica_busy_with_other_gateways_requests_counts_as_busy() -> None:
    # lumbung sent each one request; the server says a holds 6 (other gateways share it).
    a, b = C("a", inflight=1, load=said(running=6)), C("b", inflight=1, load=said(running=1))
    assert choose([a, b], None) is b


def test_waiting_requests_weigh_more_than_running_ones() -> None:
    queued = C("queued", load=said(running=2, waiting=2))  # 2 + 2 + 2 waiting again
    running = C("running", load=said(running=5))
    assert choose([queued, running], None) is running


def test_a_full_replica_gets_no_new_work_while_another_has_room() -> None:
    full = C("full", load=said(running=0), saturated=True)
    busy = C("busy", inflight=9, load=said(running=9))
    assert all(choose([full, busy], key) is busy for key in (None, affinity_key("p")))


def test_when_every_replica_is_full_the_least_loaded_still_serves() -> None:
    a = C("a", load=said(running=4, waiting=9), saturated=True)
    b = C("b", load=said(running=4, waiting=12), saturated=True)
    assert choose([a, b], None) is a


def test_kv_usage_breaks_ties() -> None:
    a, b = C("a", load=said(kv=0.8)), C("b", load=said(kv=0.3))
    assert choose([a, b], None) is b


def test_a_prefix_stays_on_its_replica_until_its_share_is_passed_then_spills() -> None:
    replicas = [C("r0"), C("r1")]
    key = affinity_key("a long shared system prompt")
    home = by_affinity(replicas, key)
    other = next(r for r in replicas if r is not home)
    picks = []
    for _ in range(4):
        pick = bounded_affinity(replicas, key, load_factor=1.25)
        pick.inflight += 1  # the request is now in flight there
        picks.append(pick)
    # 1st: share ceil(1.25*1/2)=1; 2nd: ceil(1.25*2/2)=2, home holds 1; 3rd: home at its share of 2.
    assert picks[:2] == [home, home]
    assert picks[2] is other
    assert picks[3] is home  # ceil(1.25*4/2)=3 > 2: back home
    for r in replicas:
        r.inflight = 0
    assert bounded_affinity(replicas, key) is home  # once it is quiet, the prefix goes home again


def test_bounded_affinity_counts_what_replicas_report() -> None:
    key = affinity_key("prompt")
    a, b = C("a"), C("b")
    home = by_affinity([a, b], key)
    home.load = said(running=7)  # busy with other gateways' requests
    assert bounded_affinity([a, b], key) is not home


def test_a_larger_load_factor_keeps_a_prefix_home_longer() -> None:
    key = affinity_key("prompt")
    replicas = [C(f"r{i}") for i in range(4)]
    home = by_affinity(replicas, key)
    home.inflight = 3  # total 4 with this one: fair share 1 each
    assert bounded_affinity(replicas, key, load_factor=1.25) is not home  # ceil(1.25) = 2 < 4
    assert bounded_affinity(replicas, key, load_factor=4.0) is home  # ceil(4.0) = 4


@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=1, max_size=120),
    st.integers(2, 6),
    st.sampled_from([1.0, 1.25, 2.0]),
)
def test_bounded_affinity_never_puts_more_than_its_share_on_a_replica(
    steps: list[tuple[bool, int]], n: int, factor: float
) -> None:
    """Whatever the arrivals (a few hot keys) and departures, the replica a request lands on holds at
    most ceil(factor x requests in flight / replicas) once it is placed."""
    replicas = [C(f"r{i}") for i in range(n)]
    for arrive, which in steps:
        if arrive:
            pick = bounded_affinity(replicas, affinity_key(f"prompt {which}"), factor)
            pick.inflight += 1
            total = sum(r.inflight for r in replicas)
            assert pick.inflight <= math.ceil(factor * total / n)
        else:
            busy = [r for r in replicas if r.inflight]
            if busy:
                busy[which % len(busy)].inflight -= 1


def test_a_replica_learns_how_many_it_runs_at_once_from_its_queue() -> None:
    first = parse_metrics(VLLM_TEXT.format(running=5, waiting=0), at=0.0)
    assert first.slots is None  # never queued: its limit is unknown
    queueing = parse_metrics(VLLM_TEXT.format(running=16, waiting=3), at=1.0, previous=first)
    assert queueing.slots == 16
    quiet = parse_metrics(VLLM_TEXT.format(running=2, waiting=0), at=2.0, previous=queueing)
    assert quiet.slots == 16  # remembered once learned


def test_a_prefix_does_not_queue_at_home_while_another_replica_has_room() -> None:
    key = affinity_key("a shared system prompt")
    replicas = [C(f"r{i}", load=said(running=16)) for i in range(4)]
    home = by_affinity(replicas, key)
    for r in replicas:
        r.inflight = 16
        r.load = ReplicaLoad(16, 0, 0.5, None, sleeping=False, scraped_at=0.0, slots=16)
    home.inflight = 18  # sent two since its last metrics: both wait behind its 16 running
    # within its bounded share (ceil(1.25 * 67 / 4) = 21), but the others would start it at once
    assert bounded_affinity(replicas, key) is not home
    home.inflight = 16
    assert bounded_affinity(replicas, key) is home
