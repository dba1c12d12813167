"""Every tool-call family end to end: the real embedded model, forced through each family's grammar.

One server serves the embedded GGUF under one model id per family (`tool_format` set in the config,
ChatML template, so tools reach the model in the family's own words). A forced call must come back
as OpenAI tool calls whose arguments validate, streamed and whole, whatever syntax the model wrote;
streamed, the arguments arrive in several fragments while the model writes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

from lumbung import toolcalls
from lumbung.store.embedded import GEMMA, embedded_model_path
from tests.support.server import ServerProcess
from tests.support.spec import validate

FAMILIES = sorted(toolcalls.FORMATS)
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Jakarta", "Surabaya", "Makassar"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}
TOOLS: list[Any] = [{"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}}]
ASK = [{"role": "user", "content": "Weather in Jakarta for three days?"}]


@pytest.fixture(scope="module")
def family_server(lumbung_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    gguf = embedded_model_path(lumbung_home, GEMMA)
    models = [
        {
            "id": f"gemma-{family}",
            "path": str(gguf),
            "chat_template": "chatml",
            "tool_format": family,
            "context_size": 1024,
            "parallel": 1,
        }
        for family in FAMILIES
    ]
    # No prefix cache: greedy answers compare equal across requests only without it (tests/conftest.py).
    config = {"serve_default_model": False, "models": models, "prefix_cache_mb": 0}
    proc = ServerProcess(lumbung_home, config=config, log_dir=tmp_path_factory.mktemp("families")).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(family_server: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=family_server.base_url + "/v1", api_key="anything", max_retries=0) as c:
        yield c


@pytest.mark.parametrize("family", FAMILIES)
def test_forced_call_in_each_family_format_comes_back_as_openai_tool_calls(
    client: openai.OpenAI, family: str
) -> None:
    args: dict[str, Any] = {
        "model": f"gemma-{family}",
        "messages": ASK,
        "tools": TOOLS,
        "max_tokens": 160,
        "temperature": 0,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    }
    done = client.chat.completions.create(**args)
    validate(done.model_dump(mode="json", exclude_unset=True), "CreateChatCompletionResponse")
    choice = done.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    [call] = choice.message.tool_calls or []
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), SCHEMA)
    assert not choice.message.content  # the family's markers never leak into the text

    chunks = list(client.chat.completions.create(stream=True, **args))
    for chunk in chunks:
        validate(chunk.model_dump(mode="json", exclude_unset=True), "CreateChatCompletionStreamResponse")
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas[0].id and deltas[0].function and deltas[0].function.name == "get_weather"
    streamed = "".join(d.function.arguments or "" for d in deltas if d.function)
    if toolcalls.get(family).streamer({}) is not None:  # Gemma 4's calls are sent whole, by design
        assert len([d for d in deltas if d.function and d.function.arguments]) > 1  # not sent whole
    assert streamed == call.function.arguments  # greedy: the same call, streamed
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ""
