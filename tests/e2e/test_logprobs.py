"""Log probabilities through every API that has them, against a real server and the real model."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.support.server import ServerProcess
from tests.support.spec import validate

HELLO = [{"role": "user", "content": "Write a short poem about rice barns."}]


@pytest.fixture
def client(server: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0) as c:
        yield c


def test_chat_logprobs_whole_and_streamed(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gemma3:270m",
        messages=HELLO,
        max_tokens=6,
        temperature=0,
        logprobs=True,
        top_logprobs=3,  # type: ignore[arg-type]
    )
    validate(json.loads(raw.text), "CreateChatCompletionResponse")
    done = raw.parse()
    content = done.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content and len(content) == 6
    assert "".join(t.token for t in content) == done.choices[0].message.content
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3
        assert t.top_logprobs[0].token == t.token  # greedy: the chosen token is the likeliest
        assert all(a.logprob >= b.logprob for a, b in zip(t.top_logprobs, t.top_logprobs[1:], strict=False))
    chunks = list(
        client.chat.completions.create(
            model="gemma3:270m",
            messages=HELLO,
            max_tokens=6,
            temperature=0,
            logprobs=True,
            top_logprobs=3,
            stream=True,  # type: ignore[arg-type]
        )
    )
    streamed = [
        t for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content or []
    ]
    assert [(t.token, round(t.logprob, 4)) for t in streamed] == [
        (t.token, round(t.logprob, 4)) for t in content
    ]


def test_completions_logprobs(client: openai.OpenAI) -> None:
    done = client.completions.create(
        model="gemma3:270m", prompt="The rice barn", max_tokens=5, temperature=0, logprobs=2
    )
    lp = done.choices[0].logprobs
    assert lp and lp.tokens and len(lp.tokens) == 5 and "".join(lp.tokens) == done.choices[0].text
    assert lp.text_offset and lp.text_offset[0] == 0 and lp.top_logprobs and len(lp.top_logprobs[0]) == 2
    assert all(x <= 0 for x in lp.token_logprobs or [])


def test_responses_and_ollama_logprobs(client: openai.OpenAI, server: ServerProcess) -> None:
    done = client.responses.create(
        model="gemma3:270m",
        input="Hi",
        max_output_tokens=16,
        temperature=0,
        top_logprobs=2,
        include=["message.output_text.logprobs"],
    )
    part = done.output[0].content[0]  # type: ignore[union-attr]
    assert part.logprobs and "".join(t.token for t in part.logprobs) == part.text  # type: ignore[union-attr]
    body = {
        "model": "gemma3:270m",
        "messages": HELLO,
        "stream": False,
        "logprobs": True,
        "top_logprobs": 2,
        "options": {"num_predict": 4, "temperature": 0},
    }
    r = httpx.post(server.base_url + "/api/chat", json=body, timeout=60).json()
    assert len(r["logprobs"]) == 4 and math.isfinite(r["logprobs"][0]["logprob"])
    assert len(r["logprobs"][0]["top_logprobs"]) == 2
