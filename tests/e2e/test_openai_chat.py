"""The `openai` SDK, sync and async, against a real `lumbung serve` with the embedded model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.server import ServerProcess
from tests.support.spec import validate

HELLO = [{"role": "user", "content": "Write a short poem about rice barns."}]


def warm(client: openai.OpenAI, messages: list[dict[str, str]] = HELLO) -> None:
    """Greedy text compares equal only under the same prefix-cache state (llama.cpp's kernels differ
    by batch shape, see docs/performance.md): one request first puts the prompt in the cache."""
    client.chat.completions.create(model="gemma3:270m", messages=messages, max_tokens=1, temperature=0)


@pytest.fixture
def client(server: ServerProcess) -> Iterator[openai.OpenAI]:
    # Closed after each test: an unclosed client's sockets warn (an error here) whenever GC finds them.
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="anything", max_retries=0) as c:
        yield c


@pytest.fixture
async def aclient(server: ServerProcess) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="anything", max_retries=0) as c:
        yield c


def test_non_stream_answer_matches_openai_schema(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gemma3:270m", messages=HELLO, max_tokens=12, temperature=0
    )
    body = json.loads(raw.text)
    validate(body, "CreateChatCompletionResponse")
    done = raw.parse()
    assert done.id.startswith("chatcmpl-")
    assert done.object == "chat.completion"
    assert done.model == "gemma3:270m"
    assert done.system_fingerprint and done.system_fingerprint.startswith("fp_")
    choice = done.choices[0]
    assert choice.index == 0 and choice.logprobs is None
    assert choice.message.role == "assistant" and choice.message.content
    assert done.usage is not None
    assert done.usage.completion_tokens == 12 and choice.finish_reason == "length"
    assert done.usage.total_tokens == done.usage.prompt_tokens + 12
    assert raw.headers["x-request-id"]


def test_usage_counts_are_exact(client: openai.OpenAI, server: ServerProcess) -> None:
    """prompt_tokens is the templated prompt's length: one more user token costs exactly one more."""
    a = client.chat.completions.create(
        model="gemma3:270m", messages=[{"role": "user", "content": "hello"}], max_tokens=1
    )
    b = client.chat.completions.create(
        model="gemma3:270m", messages=[{"role": "user", "content": "hello hello"}], max_tokens=1
    )
    assert a.usage and b.usage
    assert b.usage.prompt_tokens == a.usage.prompt_tokens + 1
    assert a.usage.completion_tokens == 1


def test_stream_with_usage_matches_openai_schema(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gemma3:270m",
            messages=HELLO,
            max_tokens=10,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    for chunk in chunks:
        validate(chunk.model_dump(exclude_unset=True), "CreateChatCompletionStreamResponse")
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    assert len({c.id for c in chunks}) == 1
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishing) == 1 and finishing[0].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 10
    warm(client)
    streamed = client.chat.completions.create(
        model="gemma3:270m", messages=HELLO, max_tokens=10, temperature=0, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    whole = client.chat.completions.create(model="gemma3:270m", messages=HELLO, max_tokens=10, temperature=0)
    assert text == whole.choices[0].message.content


def test_stream_without_usage_sends_none(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(model="gemma3:270m", messages=HELLO, max_tokens=3, stream=True)
    )
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_stop_string_is_not_returned(client: openai.OpenAI) -> None:
    warm(client)
    free = client.chat.completions.create(model="gemma3:270m", messages=HELLO, max_tokens=40, temperature=0)
    text = free.choices[0].message.content or ""
    words = [w for w in text.split() if len(w) >= 3]
    assert len(words) >= 3, text
    stop = words[2]
    cut = client.chat.completions.create(
        model="gemma3:270m", messages=HELLO, max_tokens=40, temperature=0, stop=[stop, "never-appears-xyz"]
    )
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[: text.index(stop)]
    streamed = client.chat.completions.create(
        model="gemma3:270m", messages=HELLO, max_tokens=40, temperature=0, stop=stop, stream=True
    )
    parts = list(streamed)
    assert "".join(c.choices[0].delta.content or "" for c in parts) == text[: text.index(stop)]
    assert parts[-1].choices[0].finish_reason == "stop"


def test_seed_makes_sampling_repeatable(client: openai.OpenAI) -> None:
    def run(seed: int) -> str:
        r = client.chat.completions.create(
            model="gemma3:270m", messages=HELLO, max_tokens=24, temperature=1.0, top_p=0.95, seed=seed
        )
        return r.choices[0].message.content or ""

    warm(client)
    assert run(1234) == run(1234)
    assert len({run(s) for s in (1, 2, 3)}) > 1


def test_penalties_user_metadata_and_developer_role_are_accepted(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="gemma3:270m",
        messages=[
            {"role": "developer", "content": "Answer briefly."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Again"},
        ],
        max_completion_tokens=5,
        presence_penalty=1.5,
        frequency_penalty=1.0,
        user="user-1",
        metadata={"team": "routing"},
    )
    assert r.usage and r.usage.completion_tokens <= 5


def test_penalties_change_greedy_output(client: openai.OpenAI) -> None:
    base = client.chat.completions.create(model="gemma3:270m", messages=HELLO, max_tokens=40, temperature=0)
    penal = client.chat.completions.create(
        model="gemma3:270m", messages=HELLO, max_tokens=40, temperature=0, frequency_penalty=2.0
    )
    assert base.choices[0].message.content != penal.choices[0].message.content


async def test_async_client_stream_and_concurrency(aclient: openai.AsyncOpenAI) -> None:
    async def one(i: int) -> str:
        stream = await aclient.chat.completions.create(
            model="gemma3:270m",
            messages=[{"role": "user", "content": f"Count to {i}"}],
            max_tokens=8,
            stream=True,
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    texts = await asyncio.gather(*(one(i) for i in range(3)))
    assert all(texts)
    done = await aclient.chat.completions.create(model="gemma3:270m", messages=HELLO, max_tokens=4)
    assert done.usage and done.usage.completion_tokens == 4


def test_models_endpoints(client: openai.OpenAI, server: ServerProcess) -> None:
    import httpx

    listing = httpx.get(server.base_url + "/v1/models").json()
    validate(listing, "ListModelsResponse")
    ids = [m.id for m in client.models.list()]
    assert ids[:2] == ["smollm2:135m", "gemma3:270m"]  # the embedded models, the default first
    model = client.models.retrieve("default")
    assert model.id == "smollm2:135m" and model.object == "model"
    validate(httpx.get(server.base_url + "/v1/models/gemma3:270m").json(), "Model")
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("no-such-model")
    assert err.value.code == "model_not_found"


def test_config_serves_another_gguf_under_an_alias(
    start_server: Any, lumbung_home: Path, request: pytest.FixtureRequest
) -> None:
    """An app hard-wired to `gpt-4o-mini` reaches a local model with no code change."""
    from lumbung.store.embedded import GEMMA, embedded_model_path

    gguf = embedded_model_path(lumbung_home, GEMMA)
    proc = start_server(
        config={
            "serve_default_model": False,
            "models": [
                {"id": "local-gemma", "path": str(gguf), "aliases": ["gpt-4o-mini"], "context_size": 512}
            ],
        }
    )
    client = openai.OpenAI(base_url=proc.base_url + "/v1", api_key="x", max_retries=0)
    request.addfinalizer(client.close)
    assert [m.id for m in client.models.list()] == ["local-gemma"]
    done = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=3)
    assert done.model == "local-gemma" and done.usage and done.usage.completion_tokens == 3
    with pytest.raises(openai.BadRequestError) as err:  # its own, smaller context applies
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "rice " * 600}]
        )
    assert err.value.code == "context_length_exceeded"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gemma3:270m", messages=HELLO, max_tokens=3)
