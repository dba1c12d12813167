"""The context a model offers each request: trained context, configured size, memory budget, RoPE."""

from __future__ import annotations

from typing import Any

import pytest

from lumbung.engines.llamacpp.context import ContextPlan, plan_context
from lumbung.engines.llamacpp.kv_types import cell_bytes
from lumbung.errors import EngineError

MiB = 2**20
# SmolLM2 135M: 8k trained, 30 layers x 3 KV heads x (64 + 64) x 2 bytes per token.
SMOL: dict[str, Any] = {
    "name": "smollm2:135m",
    "trained": 8192,
    "configured": None,
    "rope_scaling": None,
    "kv_bytes_per_token": 23040,
    "weights_bytes": 98 * MiB,
    "parallel": 4,
    "cache_cells": 0,
    "budget_bytes": None,
}


def plan(**changes: Any) -> ContextPlan:
    return plan_context(**{**SMOL, **changes})


def test_the_default_is_the_trained_context() -> None:
    got = plan()
    assert (got.size, got.trained, got.limited_by, got.rope_freq_scale) == (8192, 8192, "trained", None)
    assert got.kv_cells(4, 100) == 4 * 8192 + 100


def test_a_configured_size_below_the_trained_one_is_kept() -> None:
    got = plan(configured=2048)
    assert (got.size, got.limited_by) == (2048, "configured")


def test_past_the_trained_context_only_with_rope_scaling(caplog: pytest.LogCaptureFixture) -> None:
    capped = plan(configured=32768)
    assert (capped.size, capped.limited_by, capped.rope_scaling) == (8192, "trained", None)
    assert "rope_scaling" in caplog.text
    stretched = plan(configured=32768, rope_scaling="yarn")
    assert (stretched.size, stretched.limited_by, stretched.rope_scaling) == (32768, "rope scaling", "yarn")
    assert stretched.rope_freq_scale == 0.25
    within = plan(configured=4096, rope_scaling="linear")  # nothing to stretch
    assert (within.size, within.rope_scaling, within.rope_freq_scale) == (4096, None, None)


def test_the_memory_budget_lowers_the_context_in_whole_blocks() -> None:
    # 98 MiB weights + 4 x 8192 x 23040 B (720 MiB) do not fit in 500 MiB: what fits, rounded down.
    got = plan(budget_bytes=500 * MiB, cache_cells=1000)
    fits = ((500 - 98) * MiB // 23040 - 1000) // 4
    assert got.limited_by == "memory budget" and got.size == fits - fits % 256 and got.size < 8192
    assert 98 * MiB + 23040 * got.kv_cells(4, 1000) <= 500 * MiB
    assert plan(budget_bytes=10_000 * MiB).size == 8192  # room to spare: the trained context


def test_a_model_that_cannot_hold_a_small_context_is_refused() -> None:
    with pytest.raises(EngineError, match="does not fit in the memory budget"):
        plan(budget_bytes=100 * MiB)


def test_a_gguf_without_a_trained_context_falls_back() -> None:
    assert plan(trained=0).size == 4096
    assert plan(trained=0, configured=1024).size == 1024


@pytest.mark.parametrize(("kv_type", "at_least"), [("q8_0", 1.8), ("q4_0", 3.4)])
def test_a_quantized_kv_cache_fits_more_4k_sequences_in_the_same_budget(
    kv_type: str, at_least: float
) -> None:
    """The issue's memory target: concurrent 4k-token sequences that fit in a fixed budget (weights
    and KV together) with q8_0 >= 1.8x f16, as the engine sizes its context."""
    budget, context = 600 * MiB, 4096

    def sequences(kind: str) -> int:
        per_cell = cell_bytes(SMOL["kv_bytes_per_token"], kind)  # type: ignore[arg-type]
        parallel = 1
        while plan(kv_bytes_per_token=per_cell, configured=context, parallel=parallel + 1,
                   budget_bytes=budget).size >= context:  # fmt: skip
            parallel += 1
        return parallel

    assert sequences(kv_type) >= at_least * sequences("f16")
    assert cell_bytes(23040, "q8_0") == 12240 and cell_bytes(23040, "q4_0") == 6480
