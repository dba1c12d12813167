"""Every generating endpoint of every API, described by what the wire rules need to know of it: how to
ask for an answer, how its stream is framed, how it says "done" and how it says "failed". Tests iterate
over ``SURFACES`` so that a rule is checked for each API, not only OpenAI's. The descriptions stop at
framing and envelope shapes on purpose: the texts inside are the translators' business.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]


def sse_events(raw: bytes) -> list[Event]:
    """Server-sent events as {"event": name or None, "data": JSON or the raw text}."""
    out: list[Event] = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        text = "\n".join(data)
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        out.append({"event": name, "data": value})
    return out


def ndjson_events(raw: bytes) -> list[Event]:
    """Lines as the ollama Python client reads them (httpx's iter_lines: str.splitlines semantics)."""
    return [{"event": None, "data": json.loads(line)} for line in raw.decode().splitlines() if line.strip()]


def openai_error(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and isinstance(error.get("message"), str) and "type" in error


def anthropic_error(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return (
        isinstance(body, dict)
        and body.get("type") == "error"
        and isinstance(error, dict)
        and isinstance(error.get("message"), str)
        and isinstance(error.get("type"), str)
    )


def ollama_error(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("error"), str)


@dataclass(frozen=True)
class Surface:
    name: str
    path: str
    make_body: Callable[[str, bool], dict[str, Any]]
    parse: Callable[[bytes], list[Event]]
    is_error_envelope: Callable[[Any], bool]  # a plain HTTP error's body
    is_error_event: Callable[[Event], bool]  # an error inside a started stream
    is_done: Callable[[list[Event]], bool]  # the stream ended as a success does
    text_of: Callable[[list[Event]], str]  # the answer's text, joined from its stream's events
    headers: dict[str, str] = field(default_factory=dict)
    streams_by_default: bool = False

    def body(self, model: str, *, stream: bool) -> dict[str, Any]:
        return self.make_body(model, stream)


def _chat(model: str, stream: bool) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}


def _openai_done(events: list[Event]) -> bool:
    return bool(events) and events[-1]["data"] == "[DONE]"


def _openai_error_event(event: Event) -> bool:
    return openai_error(event["data"])


def _joined(events: list[Event], pick: Callable[[Event], Any]) -> str:
    out = []
    for event in events:
        try:
            piece = pick(event)
        except (KeyError, IndexError, TypeError):
            continue
        if isinstance(piece, str):
            out.append(piece)
    return "".join(out)


def _anthropic_text(event: Event) -> Any:
    delta = event["data"]["delta"]
    return (
        delta["text"] if event["event"] == "content_block_delta" and delta["type"] == "text_delta" else None
    )


OPENAI_CHAT = Surface(
    "openai.chat",
    "/v1/chat/completions",
    _chat,
    sse_events,
    openai_error,
    _openai_error_event,
    _openai_done,
    lambda events: _joined(events, lambda e: e["data"]["choices"][0]["delta"]["content"]),
)
OPENAI_COMPLETIONS = Surface(
    "openai.completions",
    "/v1/completions",
    lambda model, stream: {"model": model, "prompt": "hi", "stream": stream},
    sse_events,
    openai_error,
    _openai_error_event,
    _openai_done,
    lambda events: _joined(events, lambda e: e["data"]["choices"][0]["text"]),
)
OPENAI_RESPONSES = Surface(
    "openai.responses",
    "/v1/responses",
    lambda model, stream: {"model": model, "input": "hi", "stream": stream, "store": False},
    sse_events,
    openai_error,
    lambda e: e["event"] in ("error", "response.failed"),
    lambda events: bool(events) and events[-1]["event"] == "response.completed",
    lambda events: _joined(
        events, lambda e: e["data"]["delta"] if e["event"] == "response.output_text.delta" else None
    ),
)
ANTHROPIC_MESSAGES = Surface(
    "anthropic.messages",
    "/v1/messages",
    lambda model, stream: {**_chat(model, stream), "max_tokens": 32},
    sse_events,
    anthropic_error,
    lambda e: e["event"] == "error" and anthropic_error(e["data"]),
    lambda events: bool(events) and events[-1]["event"] == "message_stop",
    lambda events: _joined(events, _anthropic_text),
    headers={"anthropic-version": "2023-06-01"},
)
OLLAMA_CHAT = Surface(
    "ollama.chat",
    "/api/chat",
    _chat,
    ndjson_events,
    ollama_error,
    lambda e: ollama_error(e["data"]),
    lambda events: bool(events) and events[-1]["data"].get("done") is True,
    lambda events: _joined(events, lambda e: e["data"]["message"]["content"]),
    streams_by_default=True,
)
OLLAMA_GENERATE = Surface(
    "ollama.generate",
    "/api/generate",
    lambda model, stream: {"model": model, "prompt": "hi", "stream": stream},
    ndjson_events,
    ollama_error,
    lambda e: ollama_error(e["data"]),
    lambda events: bool(events) and events[-1]["data"].get("done") is True,
    lambda events: _joined(events, lambda e: e["data"]["response"]),
    streams_by_default=True,
)

SURFACES = [
    OPENAI_CHAT,
    OPENAI_COMPLETIONS,
    OPENAI_RESPONSES,
    ANTHROPIC_MESSAGES,
    OLLAMA_CHAT,
    OLLAMA_GENERATE,
]
