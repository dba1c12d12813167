"""Typed requests and answers (or forwarded bytes) as the OpenAI wire shapes an ``Exchange`` keeps:
a chat completions request body and a ``chat.completion`` object, a streamed answer reassembled."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from lumbung.engines.base import Collector
from lumbung.engines.http_openai import request_body
from lumbung.surfaces.openai import completion_body
from lumbung.types import ChatRequest, Chunk, Completion


def chat_body(request: ChatRequest, model: str, stream: bool) -> dict[str, Any]:
    """The request as a chat completions body under ``model`` (the name the client asked for)."""
    plain = replace(request, model=model, sampling=replace(request.sampling, logprobs=None))
    body = request_body(plain)
    body.pop("stream_options", None)
    body["stream"] = stream
    if request.sampling.logprobs is not None:
        body["logprobs"] = True
        if request.sampling.logprobs:
            body["top_logprobs"] = request.sampling.logprobs
    if request.metadata:
        body["metadata"] = dict(request.metadata)
    return body


def answer_body(request: ChatRequest, model: str, completion: Completion) -> dict[str, Any]:
    return completion_body(request, model, completion)


def collected(chunks: list[Chunk]) -> Completion | None:
    """The chunks of a stream as one answer; None when it never finished (it failed or was cut)."""
    collector = Collector()
    for chunk in chunks:
        collector.add(chunk)
    if collector.last is None or collector.last.usage is None:
        return None
    return collector.result()


def forwarded_answer(pieces: list[bytes], stream: bool) -> dict[str, Any] | None:
    """A forwarded answer's bytes as a ``chat.completion``: the body itself, or its SSE stream's
    ``chat.completion.chunk`` events reassembled. None when they hold no finished answer."""
    data = b"".join(pieces)
    if not stream:
        try:
            body = json.loads(data)
        except ValueError:
            return None
        return body if isinstance(body, dict) and "choices" in body else None
    events = []
    for line in data.split(b"\n"):
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if payload == b"[DONE]":
            continue
        try:
            event = json.loads(payload)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return reassemble(events)


def reassemble(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``chat.completion.chunk`` events as the one ``chat.completion`` they add up to (first choice)."""
    if not events:
        return None
    text: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish: str | None = None
    usage: dict[str, Any] | None = None
    for event in events:
        usage = event.get("usage") or usage
        for choice in event.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text.append(delta.get("content") or "")
            reasoning.append(delta.get("reasoning_content") or delta.get("reasoning") or "")
            for call in delta.get("tool_calls") or []:
                whole = calls.setdefault(
                    call.get("index", 0),
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                whole["id"] = call.get("id") or whole["id"]
                function = call.get("function") or {}
                whole["function"]["name"] += function.get("name") or ""
                whole["function"]["arguments"] += function.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    if finish is None:
        return None
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(text) if any(text) or not calls else None,
    }
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    if any(reasoning):
        message["reasoning_content"] = "".join(reasoning)
    first = events[0]
    body: dict[str, Any] = {
        "id": first.get("id"),
        "object": "chat.completion",
        "created": first.get("created"),
        "model": first.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    return body
