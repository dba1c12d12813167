"""How many tokens one request may use on a model: its trained context, within the memory budget.

Pure arithmetic on the model's facts (trained context, KV bytes per token from its layer and head
counts, weight bytes), so it is unit-tested without llama.cpp. The engine allocates room for every
running sequence's whole context plus the prefix cache's own cells, so the context it may offer is
what fits in the memory budget after the weights:

    weights + kv_bytes_per_token * (parallel * context + cache_cells) <= budget

Beyond the trained context a model's positions are ones it never saw in training; it goes there only
when the operator asks for RoPE scaling for that model (``rope_scaling``), which stretches the
positions to fit (``rope_freq_scale = trained / context``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from lumbung.config import RopeScaling
from lumbung.errors import EngineError

log = logging.getLogger(__name__)

LimitedBy = Literal["trained", "configured", "memory budget", "rope scaling"]

MIN_CONTEXT = 256  # fewer tokens than this per request: the model does not fit, say so at load
ROUND_TO = 256  # a context cut by the budget is rounded down to a multiple of this
FALLBACK_TRAINED = 4096  # a GGUF that records no trained context (rare)


@dataclass(frozen=True, slots=True)
class ContextPlan:
    size: int  # tokens one request may use, prompt and answer together
    trained: int
    limited_by: LimitedBy
    rope_scaling: RopeScaling | None = None  # set only when size goes past the trained context
    rope_freq_scale: float | None = None

    def kv_cells(self, parallel: int, cache_cells: int) -> int:
        return self.size * parallel + cache_cells


def plan_context(
    *,
    name: str,
    trained: int,
    configured: int | None,
    rope_scaling: RopeScaling | None,
    kv_bytes_per_token: int,
    weights_bytes: int,
    parallel: int,
    cache_cells: int,
    budget_bytes: int | None,
) -> ContextPlan:
    """The context a model offers each request (see the module docstring)."""
    trained = trained if trained > 0 else (configured or FALLBACK_TRAINED)
    limited_by: LimitedBy
    size, limited_by = trained, "trained"
    if configured:
        size, limited_by = configured, "configured"
    scaling: RopeScaling | None = None
    if size > trained:
        if rope_scaling is None:
            log.warning(
                "model %s: context_size %d is past its trained context (%d); serving %d. Set "
                "`rope_scaling` (linear or yarn) for this model to stretch it on purpose.",
                name,
                size,
                trained,
                trained,
            )
            size, limited_by = trained, "trained"
        else:
            scaling, limited_by = rope_scaling, "rope scaling"
    if budget_bytes is not None:
        room = budget_bytes - weights_bytes
        fits = (room // max(1, kv_bytes_per_token) - cache_cells) // parallel
        if fits < size:
            size = fits if fits < ROUND_TO else fits - fits % ROUND_TO
            limited_by = "memory budget"
            if size < MIN_CONTEXT:
                raise EngineError(
                    f"model {name} does not fit in the memory budget ({budget_bytes / 2**20:,.0f} MiB): "
                    f"its weights take {weights_bytes / 2**20:,.0f} MiB and {parallel} requests of "
                    f"{MIN_CONTEXT} tokens with the prefix cache need more; raise memory_budget_mb, or "
                    "lower parallel or prefix_cache_mb"
                )
    if size <= trained:
        scaling = None
    return ContextPlan(
        size=size,
        trained=trained,
        limited_by=limited_by,
        rope_scaling=scaling,
        rope_freq_scale=trained / size if scaling else None,
    )
