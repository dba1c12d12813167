"""GET /metrics from a real server with the real model: requests through the OpenAI, Anthropic and
Ollama SDKs are counted with the tokens they reported, and the local model's engine figures (loaded,
memory, KV cache, prefix cache, generated tokens) are there and agree with each other. Operator key
only, as configured."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import httpx
import ollama
import openai
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Closing
from tests.support.server import ServerProcess

MODEL = "smollm2:135m"  # the embedded default model's id ("default" is its alias)
SYSTEM = "You are the rice barn's keeper. Answer in one short sentence. " * 8  # a shared prefix


def scrape(server: ServerProcess, key: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = httpx.get(server.base_url + "/metrics", headers={"authorization": f"Bearer {key}"}, timeout=30)
    assert response.status_code == 200, response.text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def total(series: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for ls, v in series.get(name, []) if labels.items() <= ls.items())


def test_metrics_count_every_surface_and_read_the_engine(
    start_server: Callable[..., ServerProcess], closing: Closing[openai.OpenAI]
) -> None:
    server = start_server(env={"LUMBUNG_API_KEYS": "sk-user", "LUMBUNG_ADMIN_API_KEYS": "sk-admin"})
    assert httpx.get(server.base_url + "/metrics", timeout=10).status_code == 401
    assert (
        httpx.get(
            server.base_url + "/metrics", headers={"authorization": "Bearer sk-user"}, timeout=10
        ).status_code
        == 403
    )

    completion = {"openai": 0, "anthropic": 0, "ollama": 0}
    prompt = dict(completion)
    oai = closing(openai.OpenAI(base_url=server.base_url + "/v1", api_key="sk-user", max_retries=0))
    messages: list[dict[str, str]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Where is the rice?"},
    ]
    whole = oai.chat.completions.create(model="default", messages=messages, max_tokens=8)  # type: ignore[arg-type]
    assert whole.usage is not None
    completion["openai"] += whole.usage.completion_tokens
    prompt["openai"] += whole.usage.prompt_tokens
    stream = oai.chat.completions.create(
        model="default",
        messages=messages,  # type: ignore[arg-type]
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage is not None:
            completion["openai"] += chunk.usage.completion_tokens
            prompt["openai"] += chunk.usage.prompt_tokens

    claude = closing(anthropic.Anthropic(base_url=server.base_url, api_key="sk-user", max_retries=0))
    message = claude.messages.create(
        model="default",
        system=SYSTEM,
        messages=[{"role": "user", "content": "Where is the rice?"}],
        max_tokens=8,
    )
    completion["anthropic"] += message.usage.output_tokens
    prompt["anthropic"] += message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0)

    with ollama.Client(host=server.base_url, headers={"authorization": "Bearer sk-user"}) as olla:
        answer = olla.chat(
            model="default",
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": "Where is the rice?"},
            ],
            options={"num_predict": 8},
        )
    completion["ollama"] += answer.eval_count or 0
    prompt["ollama"] += answer.prompt_eval_count or 0

    series = scrape(server, "sk-admin")
    for surface, count in (("openai", 2), ("anthropic", 1), ("ollama", 1)):
        where = {"surface": surface, "model": MODEL, "provider": "local"}
        assert total(series, "lumbung_requests_total", **where, outcome="ok") == count, surface
        assert total(series, "lumbung_completion_tokens_total", **where) == completion[surface], surface
        assert total(series, "lumbung_prompt_tokens_total", **where) == prompt[surface], surface
    assert total(series, "lumbung_time_to_first_token_seconds_count", model=MODEL) == 4
    assert total(series, "lumbung_request_duration_seconds_count", endpoint="/v1/chat/completions") == 2

    model = {"model": MODEL}
    assert total(series, "lumbung_model_loaded", **model) == 1
    assert total(series, "lumbung_model_memory_bytes", **model) > 0
    assert total(series, "lumbung_model_running_sequences", **model) == 0
    assert total(series, "lumbung_model_queued_sequences", **model) == 0
    cells, used = (
        total(series, "lumbung_model_kv_cells", **model),
        total(series, "lumbung_model_kv_cells_used", **model),
    )
    assert 0 < used <= cells
    assert (
        0
        < total(series, "lumbung_model_kv_used_bytes", **model)
        <= total(series, "lumbung_model_kv_capacity_bytes", **model)
    )
    # Every answer's tokens were sampled by the engine (an end-of-generation token is sampled too).
    assert total(series, "lumbung_model_generated_tokens_total", **model) >= sum(completion.values())
    # The shared system prompt came from the prefix cache after the first request; the answers
    # reported as cached what the engine reused (less the tokens it evaluates again for logits).
    assert total(series, "lumbung_model_prefix_cache_hits_total", **model) >= 3
    reused = total(series, "lumbung_model_prefix_cache_reused_tokens_total", **model)
    assert reused > 0
    assert 0 < total(series, "lumbung_cached_prompt_tokens_total", model=MODEL) <= reused
