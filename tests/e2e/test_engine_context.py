"""A model's context comes from its GGUF (the trained context), within the memory budget; what
/v1/models and /api/show report is what a request can use; past it each API answers with its own
error; a long prompt within it is served, its KV memory shown by `lumbung ps`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest

from tests.support.server import ServerProcess

Start = Callable[..., ServerProcess]
WORD = " rice"  # one token for both embedded models' tokenizers


def models(server: ServerProcess) -> dict[str, dict[str, Any]]:
    body = httpx.get(server.base_url + "/v1/models", timeout=30).json()
    return {m["id"]: m for m in body["data"]}


def prompt_tokens(server: ServerProcess, model: str, text: str) -> int:
    with anthropic.Anthropic(base_url=server.base_url, api_key="none") as client:
        counted = client.messages.count_tokens(model=model, messages=[{"role": "user", "content": text}])
    return counted.input_tokens


def test_smollm2_offers_its_trained_context_and_refuses_past_it_in_each_apis_words(
    start_server: Start,
) -> None:
    server = start_server(config={"context_size": None, "prefix_cache_mb": 0, "parallel": 1})
    listed = models(server)["smollm2:135m"]
    assert listed["context_length"] == listed["context_length_trained"] == 8192
    assert "possible training context overflow" not in server.logs()
    with ollama.Client(host=server.base_url) as client:
        shown = client.show("default")
    assert shown.modelinfo and shown.modelinfo["llama.context_length"] == 8192
    text = WORD * 8300
    assert prompt_tokens(server, "default", text) > 8192
    messages: Any = [{"role": "user", "content": text}]

    oai = openai.OpenAI(base_url=server.base_url + "/v1", api_key="none")
    with oai, pytest.raises(openai.BadRequestError) as refused:
        oai.chat.completions.create(model="default", messages=messages, max_tokens=4)
    assert refused.value.code == "context_length_exceeded" and "8192" in refused.value.message
    claude = anthropic.Anthropic(base_url=server.base_url, api_key="none")
    with claude, pytest.raises(anthropic.BadRequestError) as rejected:
        claude.messages.create(model="default", max_tokens=4, messages=messages)
    body: Any = rejected.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "8192" in body["error"]["message"]
    with ollama.Client(host=server.base_url) as client, pytest.raises(ollama.ResponseError) as failed:
        client.chat(model="default", messages=messages, options={"num_predict": 4})
    assert failed.value.status_code == 400 and "8192" in failed.value.error


def test_the_memory_budget_lowers_the_context_and_the_reported_one_is_real(start_server: Start) -> None:
    # 98 MiB of weights and ~300 MiB of KV: room for 4 requests of about 3k tokens, not 8k.
    server = start_server(config={"context_size": None, "prefix_cache_mb": 0, "memory_budget_mb": 400})
    context = models(server)["smollm2:135m"]["context_length"]
    assert 1024 <= context < 8192
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="none") as client:
        fits = WORD * (context - 120)
        assert prompt_tokens(server, "default", fits) < context
        done = client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": fits}], max_tokens=2
        )
        assert done.usage and done.usage.prompt_tokens < context
        too_long = WORD * (context + 20)
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(
                model="default", messages=[{"role": "user", "content": too_long}], max_tokens=2
            )
    assert refused.value.code == "context_length_exceeded" and str(context) in refused.value.message


@pytest.mark.timeout(1800)  # reading 18k tokens takes minutes on 2 CPU cores
def test_an_18k_token_prompt_on_gemma_is_served_and_ps_shows_its_kv_memory(start_server: Start) -> None:
    # The prefix cache keeps the finished prompt's cells, so `lumbung ps` shows what it took.
    server = start_server(config={"context_size": None, "parallel": 1, "prefix_cache_mb": 400})
    text = "Notes from the rice barn:" + WORD * 18200
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="none", timeout=1700) as client:
        done = client.chat.completions.create(
            model="gemma3:270m", messages=[{"role": "user", "content": text}], max_tokens=3, temperature=0
        )
    assert done.usage and done.usage.prompt_tokens > 18000 and done.usage.completion_tokens <= 3
    gemma = models(server)["gemma3:270m"]
    assert gemma["context_length"] == gemma["context_length_trained"] == 32768
    held = gemma["kv_bytes_used"]
    assert gemma["kv_cells_used"] >= done.usage.prompt_tokens  # the prompt's cells, kept by the cache
    # Gemma 3's sliding-window layers (five of six) keep a window-sized KV part, allocated whole at
    # load; the cells a prompt takes are those of its full-attention layers.
    window = gemma["memory_breakdown"]["kv_window"]
    assert 0 < window < gemma["kv_bytes"] // 2
    per_cell = (gemma["kv_bytes"] - window) // gemma["kv_cells"]
    assert held == gemma["kv_cells_used"] * per_cell > 50 * 2**20
    # One sequence at the full 32k context: a cell per token there, and a window of the rest.
    assert 32768 * per_cell < gemma["kv_bytes_per_sequence"] < 32768 * per_cell + window
    ps = server.ps()
    row = next(line for line in ps.splitlines() if "gemma3:270m" in line)
    assert "32,768" in row and f"{held / 2**20:,.0f} MiB of" in row


COUNT: Any = [{"role": "user", "content": "Count from 1 to 1000, separated by commas: 1, 2, 3, 4,"}]


def test_no_or_a_huge_max_tokens_runs_to_the_end_of_the_context(start_server: Start) -> None:
    """max_tokens absent, null or 10^12: clamped to the room the prompt leaves, cut with `length`."""
    server = start_server(config={"context_size": 128, "prefix_cache_mb": 0, "parallel": 1})
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="none") as client:
        limits: list[dict[str, Any]] = [
            {},
            {"max_tokens": None},
            {"max_tokens": 10**12},
            {"max_completion_tokens": 10**12},
        ]
        for limit in limits:
            done = client.chat.completions.create(model="default", messages=COUNT, temperature=0, **limit)
            assert done.choices[0].finish_reason == "length", limit
            assert done.usage and done.usage.total_tokens == 128, limit
        response = client.responses.create(model="default", input=COUNT[0]["content"], temperature=0)
        assert response.status == "incomplete" and response.usage
        assert response.usage.input_tokens + response.usage.output_tokens == 128
    # The SDK asks for streaming when max_tokens is this large (a whole answer could take hours).
    claude = anthropic.Anthropic(base_url=server.base_url, api_key="none")
    with (
        claude,
        claude.messages.stream(
            model="default", max_tokens=10**12, messages=COUNT, extra_body={"temperature": 0}
        ) as stream,
    ):
        msg = stream.get_final_message()
    assert msg.stop_reason == "max_tokens" and msg.usage.input_tokens + msg.usage.output_tokens == 128
    with ollama.Client(host=server.base_url) as ollama_client:
        for options in ({"temperature": 0}, {"temperature": 0, "num_predict": -1}):
            said = ollama_client.chat(model="default", messages=COUNT, options=options)
            assert (
                said.done_reason == "length" and (said.prompt_eval_count or 0) + (said.eval_count or 0) == 128
            )
