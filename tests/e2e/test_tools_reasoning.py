"""Reasoning split on the real model: a template that opens ``<think>`` in the generation prompt
(as DeepSeek R1's and Qwen 3's do) puts what the model writes into ``reasoning_content`` until it
closes the block; ``chat_template_kwargs.enable_thinking`` switches it where the template can."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from lumbung.store.embedded import GEMMA, embedded_model_path
from tests.support.server import ServerProcess
from tests.support.spec import validate

THINKING_TEMPLATE = (
    "{%- for m in messages -%}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant\n"
    "{%- if enable_thinking is not defined or enable_thinking -%}<think>\n{%- endif -%}{%- endif -%}"
)
ASK = [{"role": "user", "content": "Is a rice barn a good place for grain?"}]


@pytest.fixture(scope="module")
def think_server(lumbung_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    model = {
        "id": "gemma-think",
        "path": str(embedded_model_path(lumbung_home, GEMMA)),
        "chat_template": THINKING_TEMPLATE,
        "context_size": 1024,
        "parallel": 1,
    }
    config = {"models": [model]}
    proc = ServerProcess(lumbung_home, config=config, log_dir=tmp_path_factory.mktemp("think")).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(think_server: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=think_server.base_url + "/v1", api_key="anything", max_retries=0) as c:
        yield c


def reasoning_of(message: Any) -> str:
    return str((message.model_extra or {}).get("reasoning_content") or "")


def test_open_think_block_goes_to_reasoning_content_never_to_content(client: openai.OpenAI) -> None:
    args: dict[str, Any] = {"model": "gemma-think", "messages": ASK, "max_tokens": 12, "temperature": 0}
    raw = client.chat.completions.with_raw_response.create(**args)
    validate(raw.http_response.json(), "CreateChatCompletionResponse")
    done = raw.parse()
    message = done.choices[0].message
    reasoning = reasoning_of(message)
    assert reasoning and "</think>" not in reasoning  # the model wrote inside the open block
    assert "<think>" not in (message.content or "")
    chunks = list(client.chat.completions.create(stream=True, **args))
    for chunk in chunks:
        validate(chunk.model_dump(mode="json", exclude_unset=True), "CreateChatCompletionStreamResponse")
    streamed = "".join(
        str((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "")
        for c in chunks
        if c.choices
    )
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == reasoning
    assert content == (message.content or "")


def test_enable_thinking_false_answers_in_content(client: openai.OpenAI) -> None:
    done = client.chat.completions.create(
        model="gemma-think",
        messages=ASK,
        max_tokens=12,
        temperature=0,
        extra_body={"chat_template_kwargs": {"enable_thinking": False}},
    )
    message = done.choices[0].message
    assert message.content and not reasoning_of(message)


def test_enable_thinking_on_a_template_without_the_switch_is_refused(think_server: ServerProcess) -> None:
    r = httpx.post(
        think_server.base_url + "/v1/chat/completions",
        json={
            "model": "gemma3:270m",
            "messages": ASK,
            "max_tokens": 2,
            "chat_template_kwargs": {"enable_thinking": True},
        },
    )
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "chat_template_kwargs.enable_thinking"
