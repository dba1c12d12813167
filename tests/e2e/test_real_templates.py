"""Real chat templates from llama.cpp's corpus, served over the embedded model's weights.

The weights do not matter here: what is tested is that a conversation clients send every day (an
assistant turn of tool calls with ``content: null``, Anthropic's ``tool_use``-only turn, parallel
calls, their results) goes through each model family's own template to an answer, never a 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from lumbung.store.embedded import GEMMA, embedded_model_path
from tests.support import template_corpus
from tests.support.server import ServerProcess

TEMPLATES = (
    "Qwen-Qwen3-0.6B",
    "meta-llama-Llama-3.1-8B-Instruct",
    "mistralai-Mistral-Nemo-Instruct-2407",
    "openai-gpt-oss-120b",
)
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
CALLS = [
    {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Jakarta"}'},
    },
    {
        "id": "call_2",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Bogor"}'},
    },
]
CONVERSATION: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Weather in Jakarta and Bogor?"},
    {"role": "assistant", "content": None, "tool_calls": CALLS},
    {"role": "tool", "tool_call_id": "call_1", "content": "31C"},
    {"role": "tool", "tool_call_id": "call_2", "content": "27C"},
]


@pytest.fixture(scope="module")
def template_server(lumbung_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    corpus = template_corpus.templates()
    if corpus is None:
        pytest.skip("the package registry cannot be reached: no template corpus")
    gguf = embedded_model_path(lumbung_home, GEMMA)
    models = [
        {
            "id": name.lower(),
            "path": str(gguf),
            "chat_template": corpus[name],
            "context_size": 2048,
            "parallel": 1,
        }
        for name in TEMPLATES
    ]
    config = {"serve_default_model": False, "models": models}
    proc = ServerProcess(lumbung_home, config=config, log_dir=tmp_path_factory.mktemp("templates")).start()
    yield proc
    proc.stop()


@pytest.mark.parametrize("name", TEMPLATES)
def test_openai_tool_call_turn_with_null_content_renders(template_server: ServerProcess, name: str) -> None:
    with openai.OpenAI(base_url=template_server.base_url + "/v1", api_key="x", max_retries=0) as client:
        done = client.chat.completions.create(
            model=name.lower(), messages=CONVERSATION, tools=TOOLS, max_tokens=3, temperature=0
        )
    assert done.choices[0].finish_reason in {"stop", "length", "tool_calls"}


def test_anthropic_tool_use_only_turn_renders_with_qwen3(template_server: ServerProcess) -> None:
    with anthropic.Anthropic(base_url=template_server.base_url, api_key="x", max_retries=0) as client:
        done = client.messages.create(
            model="qwen-qwen3-0.6b",
            max_tokens=3,
            system="You are terse.",
            tools=[{"name": "get_weather", "input_schema": TOOLS[0]["function"]["parameters"]}],
            messages=[
                {"role": "user", "content": "Weather in Jakarta?"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "get_weather",
                            "input": {"city": "Jakarta"},
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "31C"}],
                },
            ],
        )
    assert done.stop_reason in {"end_turn", "max_tokens", "tool_use"}
