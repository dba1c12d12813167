"""What ``GET /metrics`` reads at scrape time instead of counting twice: the gateway's providers and
targets (breakers, cut-off marks, in-flight counts, failovers) and each local model's engine (running
and queued sequences, KV cache, prefix cache, generated tokens, memory). A scrape costs a walk over
these objects; requests pay nothing for it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lumbung.engines.base import Measured, ModelStats
from lumbung.gateway.breaker import BreakerState
from lumbung.gateway.router import Gateway
from lumbung.gateway.state import ProviderState

# A breaker as a set of 0/1 series, one per state (Prometheus' way of exporting an enum).
BREAKER_STATES = [s.value for s in BreakerState]


class GatewayState(Collector):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[Metric]:
        yield from self._providers()
        yield from self._targets()
        yield from replica_families(self.gateway.providers)
        yield from self._models()

    def _providers(self) -> Iterator[Metric]:
        cut = GaugeMetricFamily(
            "lumbung_provider_cut_off",
            "1 while the provider is marked cut off (401/403/451).",
            labels=["provider"],
        )
        marks = CounterMetricFamily(
            "lumbung_provider_cut_offs",
            "Times the provider was marked cut off (an answer naming a region, country or account).",
            labels=["provider"],
        )
        for p in self.gateway.providers:
            cut.add_metric([p.name], 1.0 if p.is_cut_off else 0.0)
            marks.add_metric([p.name], p.cut_offs)
        failovers = CounterMetricFamily(
            "lumbung_failovers",
            "Requests moved on from one provider to another (or another target of the same one) after a failure.",
            labels=["from_provider", "to_provider"],
        )
        for (source, dest), count in sorted(self.gateway.failovers.items()):
            failovers.add_metric([source, dest], count)
        yield from (cut, marks, failovers)

    def _targets(self) -> Iterator[Metric]:
        labels = ["provider", "target"]
        breaker = GaugeMetricFamily(
            "lumbung_breaker_state",
            "The target's circuit breaker: 1 for its current state (closed, open, half_open), 0 for the others.",
            labels=[*labels, "state"],
        )
        inflight = GaugeMetricFamily(
            "lumbung_target_inflight_requests", "Calls to the target in flight now.", labels=labels
        )
        cooling = GaugeMetricFamily(
            "lumbung_target_rate_limited_seconds",
            "Seconds left of the target's Retry-After cool-down (0: not rate limited).",
            labels=labels,
        )
        attempts = CounterMetricFamily(
            "lumbung_target_attempts", "Calls made to the target (first tries and failovers).", labels=labels
        )
        failures = CounterMetricFamily(
            "lumbung_target_failures", "Calls to the target that failed (any reason).", labels=labels
        )
        for t in self.gateway.targets():
            row = [t.provider.name, t.key]
            now = t.breaker.state.value
            for state in BREAKER_STATES:
                breaker.add_metric([*row, state], 1.0 if state == now else 0.0)
            inflight.add_metric(row, t.inflight)
            cooling.add_metric(row, max(0.0, t.cool_until - t.provider.clock()))
            attempts.add_metric(row, t.requests)
            failures.add_metric(row, t.failures)
        yield from (breaker, inflight, cooling, attempts, failures)

    def _models(self) -> Iterator[Metric]:
        stats = [s for b in self.gateway.backends if isinstance(b, Measured) for s in b.model_stats()]
        yield from model_families(stats)


Family = type[GaugeMetricFamily] | type[CounterMetricFamily]
G, C = GaugeMetricFamily, CounterMetricFamily
# Each loaded model's figures: (kind, name, help, how to read it). Counters get ``_total`` appended.
MODEL_SERIES: tuple[tuple[Family, str, str, Callable[[ModelStats], int]], ...] = (
    (G, "lumbung_model_memory_bytes", "Weights, KV cache and adapters in memory.", lambda s: s.memory_bytes),
    (G, "lumbung_model_parallel_sequences", "Sequences decoded together at most.", lambda s: s.parallel),
    (G, "lumbung_model_running_sequences", "Sequences decoding now.", lambda s: s.running),
    (G, "lumbung_model_queued_sequences", "Sequences waiting for a free slot.", lambda s: s.queued),
    (G, "lumbung_model_kv_cells", "KV cache capacity, in cells (one token each).", lambda s: s.kv_cells),
    (
        G,
        "lumbung_model_kv_cells_used",
        "KV cells in use (sequences, cached prefixes).",
        lambda s: s.kv_cells_used,
    ),
    (
        G,
        "lumbung_model_kv_used_bytes",
        "Memory of the KV cells in use.",
        lambda s: s.kv_cells_used * s.kv_bytes_per_cell,
    ),
    (
        G,
        "lumbung_model_kv_capacity_bytes",
        "Memory of the whole KV cache (with a sliding-window model's window-sized part).",
        lambda s: s.kv_cells * s.kv_bytes_per_cell + s.kv_window_bytes,
    ),
    (
        G,
        "lumbung_model_kv_bytes_per_sequence",
        "Memory of the KV one sequence at the model's full context takes.",
        lambda s: s.kv_bytes_per_sequence,
    ),
    (
        G,
        "lumbung_model_prefix_cache_entries",
        "Finished prompts kept for reuse.",
        lambda s: s.prefix_cache_entries,
    ),
    (
        G,
        "lumbung_model_prefix_cache_cells",
        "KV cells only the prefix cache holds.",
        lambda s: s.prefix_cache_cells,
    ),
    (
        C,
        "lumbung_model_prefix_cache_hits",
        "Admissions that reused a cached prefix.",
        lambda s: s.prefix_cache_hits,
    ),
    (
        C,
        "lumbung_model_prefix_cache_misses",
        "Admissions with no prefix to reuse.",
        lambda s: s.prefix_cache_misses,
    ),
    (
        C,
        "lumbung_model_prefix_cache_reused_tokens",
        "Prompt tokens taken from the prefix cache instead of computed.",
        lambda s: s.prefix_cache_tokens,
    ),
    (C, "lumbung_model_generated_tokens", "Tokens sampled (rate(): tokens/s).", lambda s: s.generated_tokens),
    (
        C,
        "lumbung_model_refused_requests",
        "Requests refused at capacity (429: parallel + max_queue).",
        lambda s: s.refused,
    ),
    (
        C,
        "lumbung_model_speculative_draft_tokens",
        "Speculative draft tokens verified.",
        lambda s: s.draft_tokens,
    ),
    (
        C,
        "lumbung_model_speculative_accepted_tokens",
        "Speculative draft tokens the model agreed with (over draft tokens: the acceptance rate).",
        lambda s: s.accepted_draft_tokens,
    ),
    (
        C,
        "lumbung_model_fast_forwarded_tokens",
        "Tokens a grammar forced (structured output's keys and punctuation, a forced tool call's "
        "name), decoded as a batch instead of sampled one step each.",
        lambda s: s.fast_forwarded_tokens,
    ),
)


def model_families(stats: list[ModelStats]) -> list[Metric]:
    """The per-model series; every figure but ``loaded`` only for loaded models (an unloaded model has
    no engine to ask, and a 0 would read as a measurement). Counters restart at 0 on each load."""
    loaded = GaugeMetricFamily(
        "lumbung_model_loaded", "1 while the local model is loaded, 0 when it is not.", labels=["model"]
    )
    for s in stats:
        loaded.add_metric([s.model], 1.0 if s.loaded else 0.0)
    out: list[Metric] = [loaded]
    for kind, name, doc, read in MODEL_SERIES:
        family = kind(name, doc, labels=["model"])
        for s in stats:
            if s.loaded:
                family.add_metric([s.model], read(s))
        out.append(family)
    accepted = GaugeMetricFamily(
        "lumbung_model_speculative_acceptance_ratio",
        "Draft tokens accepted over draft tokens verified since the model loaded (speculating models "
        "that verified any).",
        labels=["model"],
    )
    for s in stats:
        if s.loaded and s.draft_tokens:
            accepted.add_metric([s.model], s.accepted_draft_tokens / s.draft_tokens)
    out.append(accepted)
    return out


def replica_families(providers: Iterable[ProviderState]) -> Iterator[Metric]:
    """vLLM replicas as their fleet last read them (docs/gateway.md, "vLLM fleets"); a series is left
    out while its replica's metrics are stale or unknown."""
    labels = ["provider"]
    accepting = G(
        "lumbung_vllm_replica_accepting",
        "1 while the replica takes new work (healthy and awake).",
        labels=labels,
    )
    full = G(
        "lumbung_vllm_replica_full",
        "1 while the replica's queue or KV cache is past its limit.",
        labels=labels,
    )
    running = G(
        "lumbung_vllm_replica_running_requests", "vllm:num_requests_running as last read.", labels=labels
    )
    waiting = G(
        "lumbung_vllm_replica_waiting_requests", "vllm:num_requests_waiting as last read.", labels=labels
    )
    kv = G("lumbung_vllm_replica_kv_cache_usage", "KV-cache blocks in use (0-1) as last read.", labels=labels)
    hits = G(
        "lumbung_vllm_replica_prefix_cache_hit_rate",
        "Prefix-cache hits over queries (0-1), last interval.",
        labels=labels,
    )
    age = G(
        "lumbung_vllm_replica_metrics_age_seconds",
        "Seconds since the replica's metrics were last read.",
        labels=labels,
    )
    for p in providers:
        replica = p.replica
        if replica is None:
            continue
        now, row = p.clock(), [p.name]
        accepting.add_metric(row, 1.0 if replica.accepting(now) else 0.0)
        full.add_metric(row, 1.0 if replica.saturated(now) else 0.0)
        if replica.load is not None:
            age.add_metric(row, max(0.0, now - replica.load.scraped_at))
        load = replica.fresh_load(now)
        if load is None:
            continue
        running.add_metric(row, load.running)
        waiting.add_metric(row, load.waiting)
        if load.kv_usage is not None:
            kv.add_metric(row, load.kv_usage)
        if load.prefix_hit_rate is not None:
            hits.add_metric(row, load.prefix_hit_rate)
    yield from (accepting, full, running, waiting, kv, hits, age)
