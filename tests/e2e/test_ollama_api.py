"""The `ollama` Python client against a real `lumbung serve` with the embedded model."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from lumbung.store.embedded import GEMMA, SMOLLM2_SHA256, embedded_model_path
from tests.support.server import ServerProcess

HELLO = [{"role": "user", "content": "Write a short poem about rice barns."}]
GREEDY = {"temperature": 0, "num_predict": 8}


@pytest.fixture
def client(server: ServerProcess) -> Iterator[ollama.Client]:
    with ollama.Client(host=server.base_url) as c:
        yield c


def test_chat_whole_and_streamed_agree(client: ollama.Client) -> None:
    client.chat(model="gemma3:270m", messages=HELLO, options=GREEDY, stream=False)  # warm the prefix cache
    whole = client.chat(model="gemma3:270m", messages=HELLO, options=GREEDY, stream=False, keep_alive=-1)
    assert whole.model == "gemma3:270m" and whole.done and whole.done_reason == "length"
    assert whole.message.role == "assistant" and whole.message.content
    assert whole.eval_count == 8 and whole.prompt_eval_count and whole.prompt_eval_count > 0
    assert whole.total_duration and whole.total_duration >= (whole.eval_duration or 0) > 0
    parts = list(client.chat(model="gemma3:270m", messages=HELLO, options=GREEDY, stream=True))
    assert all(not p.done for p in parts[:-1]) and parts[-1].done and parts[-1].done_reason == "length"
    assert "".join(p.message.content or "" for p in parts) == whole.message.content
    assert parts[-1].eval_count == 8 and parts[-1].created_at


def test_chat_stream_is_ndjson(server: ServerProcess) -> None:
    body = {"model": "gemma3:270m", "messages": HELLO, "options": {"num_predict": 3}}  # streams by default
    with httpx.stream("POST", server.base_url + "/api/chat", json=body, timeout=60) as r:
        assert r.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert lines[-1]["done"] is True and all(line["done"] is False for line in lines[:-1])


def test_generate_templated_raw_and_stop(client: ollama.Client) -> None:
    templated = client.generate(
        model="gemma3:270m", prompt="Name a colour.", system="Be brief.", options=GREEDY
    )
    assert templated.response and templated.done_reason == "length" and templated.eval_count == 8
    client.generate(
        model="gemma3:270m", prompt="The rice barn stood", raw=True, options=GREEDY
    )  # warm the cache
    raw = client.generate(model="gemma3:270m", prompt="The rice barn stood", raw=True, options=GREEDY)
    assert (
        raw.response and raw.prompt_eval_count and raw.prompt_eval_count < (templated.prompt_eval_count or 0)
    )
    words = [w for w in raw.response.split() if len(w) >= 2]
    assert words
    cut = client.generate(
        model="gemma3:270m", prompt="The rice barn stood", raw=True, options={**GREEDY, "stop": [words[0]]}
    )
    assert cut.done_reason == "stop" and words[0] not in cut.response
    streamed = "".join(
        p.response
        for p in client.generate(
            model="gemma3:270m", prompt="The rice barn stood", raw=True, options=GREEDY, stream=True
        )
    )
    assert streamed == raw.response


def test_empty_generate_loads_the_model(client: ollama.Client) -> None:
    done = client.generate(model="gemma3:270m", prompt="")
    assert done.done and done.done_reason == "load" and done.response == ""


def test_seed_and_options(client: ollama.Client) -> None:
    opts = {
        "temperature": 1.0,
        "seed": 42,
        "num_predict": 12,
        "top_k": 50,
        "top_p": 0.95,
        "min_p": 0.05,
        "repeat_penalty": 1.1,
        "num_ctx": 2048,
        "num_thread": 2,
    }
    client.chat(model="gemma3:270m", messages=HELLO, options=opts)  # warm the prefix cache
    a = client.chat(model="gemma3:270m", messages=HELLO, options=opts)
    b = client.chat(model="gemma3:270m", messages=HELLO, options=opts)
    assert a.message.content == b.message.content


def test_embed_and_legacy_embeddings(client: ollama.Client) -> None:
    texts = ["The cat sat on the mat.", "A cat is sitting on a rug.", "Quarterly revenue grew ten percent."]
    done = client.embed(model="gemma3:270m", input=texts)
    assert done.model == "gemma3:270m" and len(done.embeddings) == 3
    v = done.embeddings
    dot = lambda a, b: sum(x * y for x, y in zip(a, b, strict=True))  # noqa: E731
    assert math.isclose(dot(v[0], v[0]), 1.0, rel_tol=1e-4)
    assert dot(v[0], v[1]) > dot(v[0], v[2])
    assert done.prompt_eval_count and done.prompt_eval_count > 3
    one = client.embed(model="gemma3:270m", input=texts[0])
    assert all(math.isclose(x, y, abs_tol=1e-5) for x, y in zip(one.embeddings[0], v[0], strict=True))
    legacy = client.embeddings(model="gemma3:270m", prompt=texts[0])
    assert len(legacy.embedding) == len(v[0])


def test_list_show_ps_version(client: ollama.Client, server: ServerProcess) -> None:
    client.generate(model="gemma3:270m", prompt="")
    listed = client.list()
    names = [m.model for m in listed.models]
    assert "gemma3:270m" in names
    entry = next(m for m in listed.models if m.model == "gemma3:270m")
    assert entry.details and entry.details.format == "gguf" and entry.details.family == "gemma3"
    assert entry.size and entry.size > 0
    shown = client.show("gemma3:270m")
    assert (
        shown.capabilities == ["completion", "tools"] and shown.details and shown.details.family == "gemma3"
    )
    assert shown.modelinfo and shown.modelinfo["general.architecture"] == "gemma3"
    default = client.show("default")  # the alias reaches the embedded default, SmolLM2 (llama)
    assert default.details and default.details.family == "llama"
    assert default.modelinfo and default.modelinfo["llama.context_length"] == 8192
    running = client.ps()
    assert "gemma3:270m" in [m.model for m in running.models]
    version = httpx.get(server.base_url + "/api/version").json()
    assert version["version"].count(".") == 2


def test_errors_use_ollamas_envelope(client: ollama.Client, server: ServerProcess) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="no-such-model", messages=HELLO)
    assert err.value.status_code == 404 and "no-such-model" in err.value.error
    cases = [
        ({"model": "gemma3:270m", "messages": HELLO, "options": {"mirostat": 2}}, "mirostat"),
        (
            {"model": "gemma3:270m", "messages": [{"role": "user", "content": "x", "images": ["AA=="]}]},
            "images",
        ),
        ({"model": "gemma3:270m", "messages": HELLO, "keep_alive": "soon"}, "keep_alive"),
        ({"model": "gemma3:270m", "messages": HELLO, "options": {"num_ctx": 10_000_000}}, "num_ctx"),
        ({"model": "gemma3:270m", "messages": HELLO, "options": {"temperature": "hot"}}, "temperature"),
    ]
    for body, word in cases:
        r = httpx.post(server.base_url + "/api/chat", json=body, timeout=30)
        assert r.status_code == 400, r.text
        assert set(r.json()) == {"error"} and word in r.json()["error"]
    r = httpx.post(
        server.base_url + "/api/generate", json={"model": "gemma3:270m", "prompt": "x", "template": "{{.}}"}
    )
    assert r.status_code == 400 and "template" in r.json()["error"]


def test_format_and_tools_are_mapped_or_refused_clearly(client: ollama.Client) -> None:
    """JSON output and tools go to the core request and are enforced (or refused with a clear 400)."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    history = [
        {"role": "user", "content": "Weather in Jakarta?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Jakarta"}}}],
        },
        {"role": "tool", "content": "31C, humid", "tool_name": "get_weather"},
    ]
    schema = {
        "type": "object",
        "properties": {"hot": {"type": "boolean"}},
        "required": ["hot"],
        "additionalProperties": False,
    }
    for kwargs in ({"format": "json"}, {"format": schema}, {"tools": tools}):
        try:
            done = client.chat(
                model="gemma3:270m", messages=history, options={"temperature": 0, "num_predict": 48}, **kwargs
            )  # type: ignore[arg-type]
        except ollama.ResponseError as err:
            assert err.status_code == 400 and ("format" in err.error or "tools" in err.error), err.error
        else:
            assert done.done
            if kwargs.get("format") == schema:  # a small closed object: it ends well before the limit
                assert done.done_reason == "stop" and isinstance(
                    json.loads(done.message.content or "")["hot"], bool
                )
            elif "format" in kwargs and done.done_reason == "stop":
                json.loads(done.message.content or "")
            elif "format" in kwargs:  # cut by num_predict: the start of one JSON object, nothing else
                assert done.done_reason == "length" and (done.message.content or "").startswith("{")
            for call in done.message.tool_calls or []:
                assert call.function.name == "get_weather" and isinstance(call.function.arguments, dict)


def test_tags_and_ps_show_each_alias_and_the_gguf_sha256(
    client: ollama.Client, server: ServerProcess, lumbung_home: Path
) -> None:
    """The digest is the served GGUF's sha256, hashed in the background once: polled until known."""
    expected = hashlib.sha256(embedded_model_path(lumbung_home, GEMMA).read_bytes()).hexdigest()
    client.generate(model="gemma3:270m", prompt="")
    for _ in range(600):
        listed = {m.model: m for m in client.list().models}
        if listed["gemma3:270m"].digest and listed["smollm2:135m"].digest:
            break
        time.sleep(0.1)
    assert listed["gemma3:270m"].digest == expected
    # The alias `default` is listed with the default model's own file: SmolLM2's.
    assert listed["default"].digest == listed["smollm2:135m"].digest == SMOLLM2_SHA256
    assert listed["default"].size == listed["smollm2:135m"].size
    running = {m.model: m for m in client.ps().models}
    assert running["gemma3:270m"].digest == expected


def test_root_answers_as_ollama_does(server: ServerProcess) -> None:
    got = httpx.get(server.base_url + "/")
    assert got.status_code == 200 and got.text == "Ollama is running"
    head = httpx.head(server.base_url + "/")
    assert head.status_code == 200 and head.content == b""
