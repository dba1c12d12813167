"""One vLLM replica's load, read from its Prometheus ``/metrics`` text into a typed snapshot.

The metric names are vLLM's own (``vllm/v1/metrics/loggers.py``): ``vllm:num_requests_running`` and
``vllm:num_requests_waiting`` (gauges), ``vllm:kv_cache_usage_perc`` (``vllm:gpu_cache_usage_perc``
before v0.10), ``vllm:prefix_cache_queries`` / ``vllm:prefix_cache_hits`` (counters of tokens; the hit
rate is their ratio between two reads), and ``vllm:engine_sleep_state`` (``sleep_state="awake"`` 0 while
the engine sleeps). A server with several engines (data parallel) labels each with ``engine``: queues
add up, KV usage is their mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
PREFIX_QUERIES = "vllm:prefix_cache_queries"
PREFIX_HITS = "vllm:prefix_cache_hits"
PREFIX_HIT_RATE = "vllm:gpu_prefix_cache_hit_rate"  # vLLM before v0.10: a gauge
SLEEP_STATE = "vllm:engine_sleep_state"


class MetricsFormatError(ValueError):
    """Text that is not Prometheus exposition format, or lacks vLLM's queue gauges."""


@dataclass(frozen=True)
class ReplicaLoad:
    """What a replica said about itself at ``scraped_at`` (the gateway's clock)."""

    running: int
    waiting: int
    kv_usage: float | None  # 0..1, None when the server does not say
    prefix_hit_rate: float | None  # 0..1 over the last interval (or since start), None when unknown
    sleeping: bool
    scraped_at: float
    prefix_queries: float = 0.0  # the counters, for the next read's rate
    prefix_hits: float = 0.0
    slots: int | None = None  # sequences it runs at once, learned: what ran while others waited


def learned_slots(running: int, waiting: int, previous: ReplicaLoad | None) -> int | None:
    """How many sequences a replica runs at once (vLLM's ``max_num_seqs``, which its metrics do not
    say): what it was running while requests waited, the most seen so far; None until it queued once."""
    before = previous.slots if previous is not None else None
    if waiting > 0 and running > 0:
        return max(running, before or 0)
    return before


def _number(value: float, metric: str) -> float:
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise MetricsFormatError(f"{metric} is {value}")
    return value


def parse_metrics(text: str, at: float, previous: ReplicaLoad | None = None) -> ReplicaLoad:
    """The load in ``text``; ``previous`` (the last read) turns the prefix counters into a recent rate."""
    sums: dict[str, float] = {}
    kv: list[float] = []
    awake: list[float] = []
    seen: set[str] = set()
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                # By sample name: a counter's family is named with or without ``_total`` depending on
                # its TYPE line, and its ``_created`` sample is no count.
                name = sample.name
                if name.endswith("_created"):
                    continue
                name = name.removesuffix("_total")
                if name in KV_USAGE:
                    kv.append(_number(sample.value, name))
                elif name == SLEEP_STATE:
                    if sample.labels.get("sleep_state") == "awake":
                        awake.append(sample.value)
                else:
                    sums[name] = sums.get(name, 0.0) + _number(sample.value, name)
                seen.add(name)
    except MetricsFormatError:
        raise
    except (ValueError, TypeError, IndexError, KeyError) as exc:  # the parser's ways of refusing text
        raise MetricsFormatError(f"not Prometheus text: {exc}") from exc
    if RUNNING not in seen or WAITING not in seen:
        raise MetricsFormatError(f"no {RUNNING} / {WAITING}: not a vLLM server's metrics")
    queries, hits = sums.get(PREFIX_QUERIES, 0.0), sums.get(PREFIX_HITS, 0.0)
    rate: float | None = None
    if PREFIX_QUERIES in seen and PREFIX_HITS in seen:
        base_q, base_h = (previous.prefix_queries, previous.prefix_hits) if previous else (0.0, 0.0)
        if queries < base_q:  # the server restarted: its counters began again
            base_q = base_h = 0.0
        if queries > base_q:
            rate = min(1.0, max(0.0, (hits - base_h) / (queries - base_q)))
        elif previous is not None:
            rate = previous.prefix_hit_rate
    elif PREFIX_HIT_RATE in seen:
        rate = min(1.0, sums[PREFIX_HIT_RATE])
    return ReplicaLoad(
        running=int(sums[RUNNING]),
        waiting=int(sums[WAITING]),
        kv_usage=min(1.0, sum(kv) / len(kv)) if kv else None,
        prefix_hit_rate=rate,
        sleeping=bool(awake) and not any(awake),
        scraped_at=at,
        prefix_queries=queries,
        prefix_hits=hits,
        slots=learned_slots(int(sums[RUNNING]), int(sums[WAITING]), previous),
    )
