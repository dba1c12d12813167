"""Fast-forwarded structured output (forced.py): the tokens a grammar forces go into the batch as a
draft and are kept while the model's own constrained choice agrees, so a constrained answer is the
same with it and without it. The real embedded SmolLM2, in process, greedy: several JSON schemas and
a forced tool call, each answered by an engine with fast-forward on and one with it off, compared
byte for byte (text and tool calls), and the forced tokens counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lumbung.engines.llamacpp.backend import LocalModel, LocalModelSpec
from lumbung.engines.llamacpp.engine import EngineConfig
from lumbung.store.embedded import SMOLLM2, embedded_model_path
from lumbung.types import ChatRequest, Message, ResponseFormat, SamplingParams, Tool

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "email": {"type": "string"},
        "languages": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "age", "email", "languages"],
    "additionalProperties": False,
}
ORDER = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "shipped", "delivered", "cancelled"]},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer"}},
                "required": ["sku", "quantity"],
                "additionalProperties": False,
            },
        },
        "gift": {"type": "boolean"},
    },
    "required": ["order_id", "status", "items", "gift"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"},
    },
    "required": ["city", "unit", "days"],
    "additionalProperties": False,
}
CASES: list[tuple[str, dict[str, Any]]] = [
    ("Describe a rice farmer from Java as JSON.", PERSON),
    ("Make up a customer order for batik cloth and kites.", ORDER),
    ("A weather request for Yogyakarta for the next week.", WEATHER),
    ("Describe a ferry captain in Surabaya as JSON.", PERSON),
]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return embedded_model_path(tmp_path_factory.mktemp("ff-home"), SMOLLM2)


def load(path: Path, fast_forward: bool) -> LocalModel:
    config = EngineConfig(context_size=1024, threads=2, parallel=2, cache_mb=0, fast_forward=fast_forward)
    return LocalModel(LocalModelSpec(id="m", path=path, engine=config), 600.0)


@pytest.fixture(scope="module")
def engines(model_path: Path) -> Iterator[tuple[LocalModel, LocalModel]]:
    on, off = load(model_path, True), load(model_path, False)
    yield on, off
    on.close()
    off.close()


def requests() -> list[ChatRequest]:
    out = [
        ChatRequest(
            model="m",
            messages=[Message(role="user", content=prompt)],
            sampling=SamplingParams(temperature=0, max_tokens=120),
            response_format=ResponseFormat(type="json_schema", schema=schema, name="answer", strict=True),
        )
        for prompt, schema in CASES
    ]
    out.append(
        ChatRequest(
            model="m",
            messages=[Message(role="user", content="What will the weather be in Bandung on Friday?")],
            sampling=SamplingParams(temperature=0, max_tokens=120),
            tools=[
                Tool("get_weather", "The forecast for a city", WEATHER),
                Tool(
                    "book_ferry", "Book a ferry", {"type": "object", "properties": {"to": {"type": "string"}}}
                ),
            ],
            tool_choice={"type": "function", "name": "get_weather"},
        )
    )
    return out


async def answer(model: LocalModel, request: ChatRequest) -> tuple[str, dict[int, str], str | None]:
    """The text, each call's name and arguments (streamed in pieces; call ids are random), the end."""
    text, calls, finish = "", dict[int, str](), None
    async for chunk in model.stream(request):
        text += chunk.text
        for call in chunk.tool_calls:
            calls[call.index] = calls.get(call.index, "") + call.name + call.arguments
        finish = chunk.finish_reason or finish
    return text, calls, finish


def test_constrained_answers_are_the_same_with_and_without_fast_forward(
    engines: tuple[LocalModel, LocalModel],
) -> None:
    on, off = engines

    async def main() -> None:
        for request in requests():
            fast = await answer(on, request)
            plain = await answer(off, request)
            assert fast == plain, request.messages[0].content
            assert fast[0] or fast[1], "an answer was written"

    asyncio.run(main())
    assert on.engine.stats().fast_forwarded_tokens > 0, "forced tokens went in as batches"
    assert off.engine.stats().fast_forwarded_tokens == 0
