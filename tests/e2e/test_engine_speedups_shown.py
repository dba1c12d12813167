"""What speculation and fast-forwarded structured output did is visible where an operator looks:
/v1/models, `lumbung ps` and /metrics agree, over a real server and the OpenAI SDK."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import ServerProcess

Start = Callable[..., ServerProcess]
MODEL = "smollm2:135m"
DOC = (
    "Invoice 4471 from Toko Sumber Rejeki, Jalan Malioboro 12, Yogyakarta. Items: 3 sacks of rice at "
    "250,000 rupiah each, 2 crates of bananas at 80,000 rupiah each, 1 bamboo mat at 45,000 rupiah."
)
SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"enum": ["Yogyakarta", "Jakarta", "Surabaya"]},
        "sacks_of_rice": {"type": "integer"},
    },
    "required": ["city", "sacks_of_rice"],
    "additionalProperties": False,
}


def model_body(server: ServerProcess) -> dict[str, Any]:
    body = httpx.get(server.base_url + "/v1/models", timeout=30).json()
    return next(m for m in body["data"] if m["id"] == MODEL)


def samples(server: ServerProcess) -> dict[str, float]:
    text = httpx.get(server.base_url + "/metrics", timeout=30).text
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("model") == MODEL
    }


@pytest.mark.timeout(600)
def test_acceptance_rate_and_fast_forwarded_tokens_in_models_ps_and_metrics(start_server: Start) -> None:
    config = {"speculative": {"mode": "ngram", "max_draft": 8, "ngram": 3}, "parallel": 1}
    server = start_server(config=config)
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="none", timeout=300) as client:
        copied = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"Copy this text exactly:\n\n{DOC}"}],
            max_tokens=60,
            temperature=0,
        )
        shaped = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"Where is the seller, and how many sacks?\n\n{DOC}"}],
            max_tokens=200,
            temperature=0,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": SCHEMA, "strict": True},
            },
        )
    assert copied.choices[0].message.content
    assert set(json.loads(shaped.choices[0].message.content or "")) == {"city", "sacks_of_rice"}

    shown = model_body(server)
    spec, forced = shown["speculative"], shown["fast_forwarded_tokens"]
    assert spec["mode"] == "ngram" and spec["draft_tokens"] > 0 and 0 < spec["acceptance_rate"] <= 1
    assert spec["acceptance_rate"] == pytest.approx(spec["accepted_tokens"] / spec["draft_tokens"])
    assert forced > 0  # the schema's keys and punctuation went in as batches
    assert shown["deterministic"] is False
    # SmolLM2 keeps every token in every layer: a sequence at the full context takes that many cells.
    per_cell = shown["kv_bytes"] // shown["kv_cells"]
    assert shown["kv_bytes_per_sequence"] == shown["context_length"] * per_cell > 0

    metrics = samples(server)
    assert metrics["lumbung_model_speculative_draft_tokens_total"] == spec["draft_tokens"]
    assert metrics["lumbung_model_speculative_accepted_tokens_total"] == spec["accepted_tokens"]
    assert metrics["lumbung_model_speculative_acceptance_ratio"] == pytest.approx(spec["acceptance_rate"])
    assert metrics["lumbung_model_fast_forwarded_tokens_total"] == forced
    assert metrics["lumbung_model_kv_bytes_per_sequence"] == shown["kv_bytes_per_sequence"]
    assert metrics["lumbung_model_kv_capacity_bytes"] == shown["kv_bytes"]

    ps = server.ps()
    row = " ".join(line.strip() for line in ps.splitlines())
    assert f"{spec['acceptance_rate']:.0%} of {spec['draft_tokens']:,}" in row, ps
    assert f"{forced:,} forced tokens" in row, ps
    assert f"{shown['kv_bytes_per_sequence'] / 2**20:,.0f} MiB a sequence" in row, ps
