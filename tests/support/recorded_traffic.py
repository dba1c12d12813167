"""Recorded traffic for the replay tests, and a fake "cloud" that answers it.

``traffic()`` is a small recording of the kinds replay compares (a tool call, a JSON schema answer, a
JSON object answer, plain chat), each answer as the cloud gave it. ``RecordedCloud`` is a backend
(engines/base.py protocol) that answers each request with the recorded answer to the same prompt, or
with the answer a test put in ``wrong`` for it: a candidate that says exactly what the baseline said,
or one that goes wrong on purpose, request by request.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from lumbung.engines.base import Embeddings
from lumbung.proof.exchange import Exchange
from lumbung.types import ChatRequest, Chunk, CompletionRequest, ModelInfo, ToolCall, Usage

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city", "unit"],
        },
    },
}
PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def completion(content: str | None = None, calls: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}}
            for i, (n, a) in enumerate(calls)
        ]
    return {
        "id": "chatcmpl-cloud",
        "object": "chat.completion",
        "created": 1,
        "model": "cloud-model",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
    }


def _ask(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-cloud", "messages": [{"role": "user", "content": prompt}], **extra}


def traffic() -> list[Exchange]:
    json_schema = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON_SCHEMA}}
    rows = [
        ("tool-1", "tools", _ask("Weather in Paris?", tools=[WEATHER_TOOL]),
         completion(calls=[("get_weather", '{"city": "Paris", "unit": "celsius", "days": 2}')])),
        ("tool-2", "tools", _ask("Weather in Oslo?", tools=[WEATHER_TOOL]),
         completion(calls=[("get_weather", '{"city": "Oslo", "unit": "fahrenheit"}')])),
        ("json-1", "extract", _ask("Ada, 36", response_format=json_schema),
         completion('{"name": "Ada", "age": 36}')),
        ("json-2", "extract", _ask("Alan, 41", response_format={"type": "json_object"}),
         completion('{"name": "Alan", "age": 41}')),
        ("chat-1", "chat", _ask("Say hello"), completion("Hello there! How can I help you today?")),
        ("chat-2", "chat", _ask("Capital of France?"), completion("The capital of France is Paris.")),
    ]  # fmt: skip
    return [
        Exchange(id=i, request=req, response=resp, group=group, latency_ms=100.0 + n, ttft_ms=20.0 + n)
        for n, (i, group, req, resp) in enumerate(rows)
    ]


@dataclass
class RecordedCloud:
    """Answers each prompt with its recorded answer, or ``wrong[prompt]`` (a chat.completion)."""

    exchanges: list[Exchange]
    wrong: dict[str, dict[str, Any]] = field(default_factory=dict)
    name: str = "cloud"
    requests: list[ChatRequest | CompletionRequest] = field(default_factory=list)

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(id="m")]

    def _answer(self, request: ChatRequest | CompletionRequest) -> dict[str, Any]:
        assert isinstance(request, ChatRequest)
        prompt = next(m.content for m in reversed(request.messages) if m.role == "user")
        if prompt in self.wrong:
            return self.wrong[prompt]
        for exchange in self.exchanges:
            if exchange.request["messages"][-1]["content"] == prompt:
                assert exchange.response is not None
                return exchange.response
        raise AssertionError(f"no recorded answer for {prompt!r}")

    def stream(self, request: ChatRequest | CompletionRequest) -> AsyncGenerator[Chunk, None]:
        self.requests.append(request)
        return self._run(self._answer(request))

    async def _run(self, answer: dict[str, Any]) -> AsyncGenerator[Chunk, None]:
        choice = answer["choices"][0]
        message = choice["message"]
        if message.get("content"):
            # in two pieces, as a stream would bring it
            text = message["content"]
            yield Chunk(text=text[: len(text) // 2])
            yield Chunk(text=text[len(text) // 2 :])
        for i, call in enumerate(message.get("tool_calls") or []):
            function = call["function"]
            yield Chunk(tool_calls=[ToolCall(call["id"], function["name"], function["arguments"], i)])
        usage = answer["usage"]
        yield Chunk(
            finish_reason=choice["finish_reason"],
            usage=Usage(prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"]),
        )

    async def embed(self, model: str, inputs: list[str]) -> Embeddings:
        # bag of letters: texts that share letters point the same way
        vectors = [[float(t.lower().count(c)) for c in "abcdefghijklmnopqrstuvwxyz "] for t in inputs]
        return Embeddings(vectors, prompt_tokens=len(inputs))

    async def count_tokens(self, request: ChatRequest | CompletionRequest) -> int:
        return 2

    async def health(self) -> bool:
        return True


def arguments(value: dict[str, Any]) -> str:
    return json.dumps(value)
