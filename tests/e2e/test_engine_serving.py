"""The engine behind a real `lumbung serve`, driven by the openai SDK: many streams at once, a full
queue, prefix reuse, idle unload and reload, the memory budget, and `lumbung ps`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from lumbung.engines.llamacpp import swa
from lumbung.store.embedded import GEMMA, embedded_model_path
from tests.conftest import Closing
from tests.support.server import ServerProcess

HANDBOOK = " ".join(f"Rule {i}: barn {i % 5} opens at dawn." for i in range(30))


def models(server: ServerProcess) -> dict[str, dict[str, Any]]:
    body = httpx.get(server.base_url + "/v1/models", timeout=10).json()
    return {m["id"]: m for m in body["data"]}


def wait_for(check: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


async def test_eight_streams_at_once_all_finish_and_health_stays_up(server: ServerProcess) -> None:
    async with openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0) as client:

        async def one(i: int) -> tuple[str, Any, str | None]:
            stream = await client.chat.completions.create(
                model="gemma3:270m",
                messages=[{"role": "user", "content": f"Story {i} about kites."}],
                max_tokens=24,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
            text, usage, finish = "", None, None
            async for chunk in stream:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                    finish = chunk.choices[0].finish_reason or finish
                usage = chunk.usage or usage
            return text, usage, finish

        async def probe() -> list[int]:
            busy = []
            async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
                for _ in range(20):
                    assert (await http.get("/health")).status_code == 200
                    listing = (await http.get("/v1/models")).json()["data"]
                    busy.append(
                        sum(m.get("active_requests", 0) + m.get("queued_requests", 0) for m in listing)
                    )
                    await asyncio.sleep(0.05)
            return busy

        # Gemma loads on first use: loaded first, so the probes below meet the streams in the engine.
        await client.chat.completions.create(
            model="gemma3:270m", messages=[{"role": "user", "content": "hi"}], max_tokens=1
        )
        streams = asyncio.gather(*(one(i) for i in range(8)))
        busy = await probe()
        results = await streams
    assert max(busy) > 0  # the probes ran while the engine was busy
    for text, usage, finish in results:
        assert finish == "length" and usage.completion_tokens == 24 and text


def test_a_full_queue_answers_429_with_retry_after(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(env={"LUMBUNG_PARALLEL": "1", "LUMBUNG_MAX_QUEUE": "0"})
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    stream = client.chat.completions.create(
        model="gemma3:270m",
        messages=[{"role": "user", "content": "A very long story."}],
        max_tokens=2000,
        stream=True,
    )
    next(iter(stream))  # it holds the only slot now
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(
            model="gemma3:270m", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
    assert int(err.value.response.headers["retry-after"]) >= 1
    assert err.value.code == "rate_limit_exceeded"
    ps = server.ps()
    assert "gemma3:270m" in ps and "1/1" in ps and "MiB" in ps
    stream.close()  # the disconnect frees the slot
    wait_for(lambda: models(server)["gemma3:270m"]["active_requests"] == 0)
    done = client.chat.completions.create(
        model="gemma3:270m", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    assert done.usage and done.usage.completion_tokens == 2


def test_a_shared_system_prompt_is_reused_and_reported(
    start_server: Callable[..., ServerProcess], closing: Closing
) -> None:
    server = start_server()  # default settings: the prefix cache is on (the shared server's is off)
    client = closing(openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0))

    def ask(question: str) -> Any:
        return client.chat.completions.create(
            model="gemma3:270m",
            max_tokens=4,
            temperature=0,
            messages=[{"role": "system", "content": HANDBOOK}, {"role": "user", "content": question}],
        )

    before = models(server)["gemma3:270m"].get("prefix_cache", {}).get("hits", 0)  # 0 until it loads
    first, second = ask("When does barn 3 open?"), ask("Who has the keys?")
    assert first.usage and second.usage
    details = second.usage.prompt_tokens_details
    assert details is not None and details.cached_tokens is not None
    assert details.cached_tokens >= 250 and details.cached_tokens < second.usage.prompt_tokens
    assert models(server)["gemma3:270m"]["prefix_cache"]["hits"] >= before + 1


def test_idle_unload_reload_and_memory_budget(
    start_server: Callable[..., ServerProcess], lumbung_home: Path
) -> None:
    path = str(embedded_model_path(lumbung_home, GEMMA))
    small = {"path": path, "parallel": 1, "context_size": 512, "prefix_cache_mb": 0}
    server = start_server(
        config={
            "serve_default_model": False,
            "memory_budget_mb": 400,  # one copy of the 270M model fits, two do not
            "models": [{"id": "a", "keep_alive": 2, **small}, {"id": "b", "keep_alive": -1, **small}],
        }
    )
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)

    def ask(model: str) -> str:
        r = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Name three grains."}],
            max_tokens=8,
            temperature=0,
        )
        return r.choices[0].message.content or ""

    first = ask("a")
    assert models(server)["a"]["loaded"] and models(server)["a"]["memory_bytes"] < 400 * 2**20
    wait_for(lambda: not models(server)["a"]["loaded"])  # idle past its keep-alive
    assert ask("a") == first  # loaded again, same greedy answer
    assert models(server)["a"]["loaded"]
    ask("b")  # b does not fit beside a: the idle a goes
    listing = models(server)
    assert listing["b"]["loaded"] and not listing["a"]["loaded"]


def test_requests_that_can_never_fit_are_400_and_embeddings_share_the_places(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(env={"LUMBUNG_PARALLEL": "1", "LUMBUNG_MAX_QUEUE": "1"})
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    hi = [{"role": "user", "content": "hi"}]
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="gemma3:270m", messages=hi, n=3, max_tokens=2, stream=stream)  # type: ignore[call-overload]
        assert err.value.param == "n" and "parallel (1) + max_queue (1) = 2" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="gemma3:270m", prompt=["a", "b", "c"], max_tokens=2)
    assert "3 sequences" in err.value.message
    two = client.completions.create(model="gemma3:270m", prompt=["a", "b"], max_tokens=2)  # fits: served
    assert len(two.choices) == 2

    # Two long answers hold both places: embeddings are refused like any other request.
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        counting = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"  # a base model counts on: no early stop
        body = {
            "model": "gemma3:270m",
            "prompt": counting,
            "max_tokens": 2000,
            "temperature": 0,
            "stream": True,
        }
        with http.stream("POST", "/v1/completions", json=body) as first:
            lines = first.iter_lines()  # kept: a dropped iterator closes the connection
            next(lines)
            asyncio.run(_hold_queued(server))
    wait_for(lambda: models(server)["gemma3:270m"]["active_requests"] == 0)
    assert client.embeddings.create(model="gemma3:270m", input="hello").data  # free again


async def _hold_queued(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        body = {"model": "gemma3:270m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
        queued = asyncio.ensure_future(http.post("/v1/chat/completions", json=body))
        while models(server)["gemma3:270m"]["queued_requests"] != 1:
            await asyncio.sleep(0.05)
        openai_style = await http.post("/v1/embeddings", json={"model": "gemma3:270m", "input": "hello"})
        assert openai_style.status_code == 429 and int(openai_style.headers["retry-after"]) >= 1
        assert openai_style.json()["error"]["code"] == "rate_limit_exceeded"
        assert "takes 2 at once" in openai_style.json()["error"]["message"]
        ollama_style = await http.post("/api/embed", json={"model": "gemma3:270m", "input": ["hello"]})
        assert ollama_style.status_code == 429 and "retry-after" in ollama_style.headers
        assert set(ollama_style.json()) == {"error"}
        queued.cancel()
        await asyncio.gather(queued, return_exceptions=True)


def test_gemmas_sliding_window_kv_is_window_sized_and_chats_still_reuse_their_prefix(
    start_server: Callable[..., ServerProcess], closing: Closing
) -> None:
    """Gemma 3's sliding-window layers keep a window per sequence, not the whole context; a shared
    system prompt and a chat growing turn by turn still hit the cache (swa.py), with the text a cold
    server gives."""
    settings = {"parallel": 4, "context_size": 4096, "batch_size": 512}
    warm = start_server(config=settings)
    cold = start_server(config={**settings, "prefix_cache_mb": 0})

    def client_of(server: ServerProcess) -> openai.OpenAI:
        return closing(openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0))

    def chat(client: openai.OpenAI, messages: list[dict[str, str]]) -> tuple[str, int]:
        r = client.chat.completions.create(
            model="gemma3:270m",
            max_tokens=16,
            temperature=0,
            messages=messages,  # type: ignore[arg-type]
        )
        details = r.usage.prompt_tokens_details if r.usage else None
        return r.choices[0].message.content or "", (details.cached_tokens or 0) if details else 0

    system = {"role": "system", "content": HANDBOOK}
    w, c = client_of(warm), client_of(cold)
    turn1 = [system, {"role": "user", "content": "When does barn 3 open?"}]
    text1, _ = chat(w, turn1)
    other = [system, {"role": "user", "content": "Who has the keys?"}]
    other_text, other_cached = chat(w, other)  # shares the system prompt (~300 tokens)
    assert other_cached >= 250
    turn2 = [*turn1, {"role": "assistant", "content": text1}, {"role": "user", "content": "And barn 4?"}]
    text2, cached2 = chat(w, turn2)
    assert cached2 >= 300  # the whole first turn
    assert chat(c, turn2) == (text2, 0)
    assert chat(c, other) == (other_text, 0)

    m = models(warm)["gemma3:270m"]
    breakdown = m["memory_breakdown"]
    # 15 sliding-window layers x 1 KV head x 256 x (K + V) x f16, for a 512-token window per
    # sequence id (4 running, 2 cached, 2 spare) and a batch, as llama.cpp sizes it
    window = swa.window_cells(512, 4 + 2 + swa.SPARE_IDS, 512) * 15 * 2 * 256 * 2
    assert breakdown["kv_window"] == window  # not 16,384+ cells
    assert breakdown["kv"] == window + 4 * 4096 * 3 * 2 * 256 * 2  # + the 3 full-attention layers
    assert 0 < breakdown["kv_checkpoints"] <= 6 * 4 * 8 * 2**20  # windows of 7.5 MiB, bounded
    assert m["kv_bytes"] == breakdown["kv"]
