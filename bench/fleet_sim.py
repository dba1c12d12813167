"""Balancing a vLLM fleet, simulated: a multi-tenant chat workload with shared system prompts over 4-16
replicas, behind 1, 2 or 4 lumbung instances, under four policies — round robin, least outstanding,
plain prefix affinity, and lumbung's own (``gateway/balancer.choose``: bounded-load affinity that
counts each replica's own queue and KV pressure from its metrics and passes over full ones).

The policies are the gateway's real functions; the replicas are simulated on a virtual clock, as
vLLM schedules them: a bounded number of running sequences, a FIFO waiting queue, chunked prefill at a
fixed token rate, decode steps that slow as the batch grows, and a prefix cache (LRU, sharing the KV
budget with the running sequences) whose hits skip the cached part of the prefill. Each lumbung
instance counts only its own requests in flight and reads every replica's metrics once a second (as
``kind: vllm`` providers scrape ``/metrics``), so with several instances it sees the others' load
only through those metrics. A load balancer in front deals requests to the instances in turn.

Deterministic for a seed, no wall clock involved: prints TTFT p50/p95, throughput and prefix-cache hit
rate per policy, and lumbung's ratios to each other policy.

    python bench/fleet_sim.py [--replicas 4 8 16] [--instances 1 2 4] [--seconds 120] [--load 0.85]
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import statistics
import sys
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lumbung.config.vllm import FleetConfig
from lumbung.engines.vllm_metrics import ReplicaLoad, learned_slots
from lumbung.gateway import balancer

TICK = 0.01  # seconds of virtual time per scheduler step
SCRAPE = 1.0  # seconds between an instance's reads of every replica's metrics
POLICIES = ("round_robin", "least_outstanding", "affinity", "lumbung")


@dataclass(frozen=True, slots=True)
class Shape:
    """One replica's speed and memory (the figures of a mid-size model on one GPU, scaled down)."""

    slots: int = 16  # sequences running at once (vLLM's max_num_seqs)
    prefill_rate: float = 8000.0  # prompt tokens per second, shared by the sequences in prefill
    step_base: float = 0.025  # seconds per decode step with one sequence...
    step_per_seq: float = 0.001  # ...and this much more per running sequence
    kv_tokens: int = 60_000  # KV cache, in tokens: running sequences plus cached prefixes


@dataclass(slots=True)
class Request:
    id: int
    tenant: int
    prefix: int  # tokens of the tenant's shared system prompt
    suffix: int  # tokens of this conversation's own part
    output: int
    arrival: float
    key: str
    prefill_left: float = 0.0
    decoded: float = 0.0
    first_token: float | None = None
    done: float | None = None
    hit: bool = False

    @property
    def tokens(self) -> int:
        return self.prefix + self.suffix + int(self.decoded)


@dataclass
class Replica:
    name: str
    shape: Shape
    waiting: deque[Request] = field(default_factory=deque)
    running: list[Request] = field(default_factory=list)
    cache: OrderedDict[int, int] = field(default_factory=OrderedDict)  # tenant -> cached prefix tokens
    queries: int = 0  # prefix-cache counters, in tokens, as vLLM counts them
    hits: int = 0
    on_done: Callable[[Request], None] = lambda r: None

    def _evict_for(self, tokens: int) -> bool:
        running = sum(r.tokens for r in self.running)
        while self.cache and running + sum(self.cache.values()) + tokens > self.shape.kv_tokens:
            self.cache.popitem(last=False)
        return running + sum(self.cache.values()) + tokens <= self.shape.kv_tokens

    def _admit(self) -> None:
        while self.waiting and len(self.running) < self.shape.slots:
            request = self.waiting[0]
            cached = self.cache.get(request.tenant, 0)
            if cached:
                self.cache.move_to_end(request.tenant)  # in use: evicted last
            if not self._evict_for(request.prefix + request.suffix + request.output - cached):
                break
            cached = self.cache.get(request.tenant, 0)  # evicted after all when nothing else was left
            self.waiting.popleft()
            self.queries += request.prefix + request.suffix
            if cached:
                self.hits += cached
                request.hit = True
            request.prefill_left = request.prefix + request.suffix - cached
            self.running.append(request)

    def step(self, now: float) -> None:
        self._admit()
        budget = self.shape.prefill_rate * TICK
        for request in self.running:  # chunked prefill, oldest first
            if request.prefill_left <= 0 or budget <= 0:
                continue
            used = min(budget, request.prefill_left)
            request.prefill_left -= used
            budget -= used
            if request.prefill_left <= 0:
                request.first_token = now + TICK
        decoding = [r for r in self.running if r.prefill_left <= 0]
        if decoding:
            per_step = self.shape.step_base + self.shape.step_per_seq * len(self.running)
            for request in decoding:
                request.decoded += TICK / per_step
        finished = [r for r in decoding if r.decoded >= r.output]
        for request in finished:
            self.running.remove(request)
            request.done = now + TICK
            self.cache[request.tenant] = request.prefix  # its system prompt stays cached
            self.cache.move_to_end(request.tenant)
            self._evict_for(0)
            self.on_done(request)

    def metrics(self, at: float, previous: ReplicaLoad | None) -> ReplicaLoad:
        return ReplicaLoad(
            running=len(self.running),
            waiting=len(self.waiting),
            # as vLLM counts it: blocks held by running sequences (cached, unreferenced ones are free)
            kv_usage=min(1.0, sum(r.tokens for r in self.running) / self.shape.kv_tokens),
            prefix_hit_rate=None,
            sleeping=False,
            scraped_at=at,
            prefix_queries=float(self.queries),
            prefix_hits=float(self.hits),
            slots=learned_slots(len(self.running), len(self.waiting), previous),
        )


@dataclass
class View:
    """One lumbung instance's view of one replica: what it sent there, and the last metrics read."""

    replica: Replica
    fleet: FleetConfig
    inflight: int = 0
    last: ReplicaLoad | None = None

    @property
    def key(self) -> str:
        return self.replica.name

    @property
    def weight(self) -> float:
        return 1.0

    @property
    def load(self) -> ReplicaLoad | None:
        return self.last

    @property
    def saturated(self) -> bool:
        load = self.last
        if load is None:
            return False
        kv_full = load.kv_usage is not None and load.kv_usage >= self.fleet.kv_limit
        return load.waiting >= self.fleet.waiting_limit or kv_full


class Instance:
    def __init__(self, replicas: Sequence[Replica], policy: str, rng: random.Random, offset: float) -> None:
        fleet = FleetConfig()
        self.views = [View(r, fleet) for r in replicas]
        self.policy = policy
        self.rng = rng
        self.turn = rng.randrange(len(self.views))  # instances start their turns anywhere
        self.next_scrape = offset

    def scrape(self, now: float) -> None:
        if now >= self.next_scrape:
            for view in self.views:
                view.last = view.replica.metrics(now, view.last)
            self.next_scrape += SCRAPE

    def pick(self, request: Request) -> View:
        if self.policy == "round_robin":
            self.turn += 1
            return self.views[self.turn % len(self.views)]
        if self.policy == "least_outstanding":
            return balancer.least_outstanding(self.views, self.rng)
        if self.policy == "affinity":
            return balancer.by_affinity(self.views, request.key)
        return balancer.choose(self.views, request.key, self.rng)


def workload(seconds: float, rate: float, tenants: int, rng: random.Random) -> list[Request]:
    """Poisson arrivals; tenants by a Zipf-like popularity, each with its own system prompt length."""
    prefixes = [rng.randint(1000, 3000) for _ in range(tenants)]
    popularity = [1.0 / (i + 1) ** 1.1 for i in range(tenants)]
    requests, now, n = [], 0.0, 0
    while True:
        now += rng.expovariate(rate)
        if now >= seconds:
            return requests
        tenant = rng.choices(range(tenants), popularity)[0]
        requests.append(
            Request(
                n,
                tenant,
                prefixes[tenant],
                rng.randint(50, 300),
                rng.randint(50, 200),
                now,
                f"tenant-{tenant}",
            )
        )
        n += 1


@dataclass(frozen=True)
class Result:
    ttft_p50: float
    ttft_p95: float
    throughput: float  # requests completed per second of the measured window
    hit_rate: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in vars(self).items()}


def simulate(
    policy: str, replicas: int, instances: int, requests: Sequence[Request], seconds: float, seed: int
) -> Result:
    rng = random.Random(seed)
    shape = Shape()
    fleet = [Replica(f"vllm-{i}", shape) for i in range(replicas)]
    gateways = [Instance(fleet, policy, rng, offset=i * SCRAPE / instances) for i in range(instances)]
    owner: dict[int, tuple[Instance, View]] = {}

    def done(request: Request) -> None:
        _, view = owner.pop(request.id)
        view.inflight -= 1

    for replica in fleet:
        replica.on_done = done
    pending = [
        (r.arrival, r.id, r)
        for r in (Request(**{f: getattr(q, f) for f in Request.__slots__}) for q in requests)
    ]
    heapq.heapify(pending)
    sent: list[Request] = []
    now, deal = 0.0, 0
    drain_until = seconds * 1.5
    while now < drain_until:
        for gateway in gateways:
            gateway.scrape(now)
        while pending and pending[0][0] <= now:
            _, _, request = heapq.heappop(pending)
            gateway = gateways[deal % instances]
            deal += 1
            view = gateway.pick(request)
            view.inflight += 1
            owner[request.id] = (gateway, view)
            view.replica.waiting.append(request)
            sent.append(request)
        for replica in fleet:
            replica.step(now)
        now += TICK
    warm = seconds * 0.15
    measured = [r for r in sent if r.arrival >= warm]
    ttfts = sorted(
        (r.first_token if r.first_token is not None else drain_until) - r.arrival for r in measured
    )
    finished = [r for r in measured if r.done is not None and r.done <= seconds]
    queries = sum(r.queries for r in fleet)
    return Result(
        ttft_p50=statistics.median(ttfts),
        ttft_p95=ttfts[int(0.95 * (len(ttfts) - 1))],
        throughput=len(finished) / (seconds - warm),
        hit_rate=sum(r.hits for r in fleet) / queries if queries else 0.0,
    )


def capacity_per_replica(shape: Shape) -> float:
    """Requests per second one replica sustains on this workload when half the prompt is cached."""
    prompt, output = 2000 + 175, 125
    prefill = (prompt - 1000) / shape.prefill_rate
    decode = output * (shape.step_base + shape.step_per_seq * shape.slots)
    return shape.slots / (prefill * shape.slots + decode)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicas", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=120.0, help="Virtual seconds of arrivals.")
    parser.add_argument("--load", type=float, default=0.85, help="Offered load, as a fraction of capacity.")
    parser.add_argument("--tenants-per-replica", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="Also write every number here.")
    args = parser.parse_args()
    out: list[dict[str, object]] = []
    for replicas in args.replicas:
        rate = args.load * capacity_per_replica(Shape()) * replicas
        requests = workload(args.seconds, rate, args.tenants_per_replica * replicas, random.Random(args.seed))
        for instances in args.instances:
            results = {
                p: simulate(p, replicas, instances, requests, args.seconds, args.seed) for p in POLICIES
            }
            print(f"\n{replicas} replicas, {instances} lumbung instance(s), {rate:.1f} req/s offered")
            print(f"  {'policy':<18} {'TTFT p50':>9} {'TTFT p95':>9} {'req/s':>7} {'prefix hits':>11}")
            for policy, r in results.items():
                print(
                    f"  {policy:<18} {r.ttft_p50:>8.2f}s {r.ttft_p95:>8.2f}s {r.throughput:>7.2f} "
                    f"{r.hit_rate:>10.0%}"
                )
            ours = results["lumbung"]
            for policy in POLICIES[:-1]:
                other = results[policy]
                print(
                    f"  lumbung vs {policy:<17} TTFT p50 {other.ttft_p50 / ours.ttft_p50:5.2f}x lower, "
                    f"p95 {other.ttft_p95 / ours.ttft_p95:5.2f}x lower, "
                    f"throughput {ours.throughput / other.throughput:4.2f}x"
                )
            out.append(
                {
                    "replicas": replicas,
                    "instances": instances,
                    "rate": round(rate, 2),
                    "results": {p: r.as_dict() for p, r in results.items()},
                }
            )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
