"""A quantized KV cache (`kv_cache_type: q8_0`): the model answers from it, `/v1/models` (and so
`lumbung ps` and /metrics) reports its type and its size, about half of what f16 takes."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai

from tests.support.server import ServerProcess

Start = Callable[..., ServerProcess]


def test_a_q8_0_kv_cache_answers_in_half_the_memory(start_server: Start) -> None:
    server = start_server(
        config={"kv_cache_type": "q8_0", "prefix_cache_mb": 0, "parallel": 2, "context_size": 2048}
    )
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="none") as client:
        done = client.chat.completions.create(
            model="default",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=16,
            temperature=0,
        )
    # words, not garbage: what quantization costs in quality is measured by bench/kv_quant.py
    assert len((done.choices[0].message.content or "").split()) >= 3
    body = httpx.get(server.base_url + "/v1/models", timeout=30).json()
    listed = next(m for m in body["data"] if m["id"] == "smollm2:135m")
    assert listed["kv_cache_type"] == "q8_0"
    assert listed["kv_bytes"] < 0.55 * listed["kv_bytes_f16"]  # 34 bytes per 32 elements vs 64
    assert "KV cache (q8_0)" in server.logs()
    # where the memory goes, as llama.cpp allocated it: its KV buffer is the quantized size
    parts = listed["memory_breakdown"]
    assert parts["weights"] > 50 * 2**20 and parts["compute"] > 0
    assert abs(parts["kv"] - listed["kv_bytes"]) < 0.05 * listed["kv_bytes"]
    assert body["process"]["rss_bytes"] > parts["kv"] + parts["compute"]
