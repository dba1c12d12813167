"""One answer as replay compares it: text, tool calls, finish reason, tokens and timings, read from a
recorded ``chat.completion`` or reassembled from a chat completions event stream."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    arguments: str  # JSON text as the model wrote it


@dataclass(slots=True)
class Answer:
    text: str = ""
    calls: list[Call] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    error: str | None = None  # the error when no answer came back
    cost: float | None = None  # from the price table (proof/pricing.py); None where nothing is priced

    @property
    def failed(self) -> bool:
        return self.error is not None


def from_completion(
    body: dict[str, Any] | None, *, latency_ms: float | None = None, ttft_ms: float | None = None
) -> Answer:
    """The first choice of a ``chat.completion`` object (None: the request failed)."""
    if not body:
        return Answer(error="no answer", latency_ms=latency_ms, ttft_ms=ttft_ms)
    choices = body.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    calls = [
        Call(str((c.get("function") or {}).get("name", "")), _arguments(c))
        for c in message.get("tool_calls") or []
        if isinstance(c, dict)
    ]
    usage = body.get("usage") or {}
    return Answer(
        text=_content(message.get("content")),
        calls=calls,
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
    )


def _arguments(call: dict[str, Any]) -> str:
    arguments = (call.get("function") or {}).get("arguments", "")
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class StreamAssembler:
    """Feeds on the ``data:`` payloads of a chat completions stream and builds the ``Answer``."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, dict[str, str]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] = {}
        self.error: str | None = None

    def feed(self, event: dict[str, Any]) -> bool:
        """Takes one event; True when it carried content (the first such is the time to first token)."""
        if "error" in event:
            error = event["error"]
            self.error = str(error.get("message") if isinstance(error, dict) else error)
            return False
        if event.get("usage"):
            self.usage = event["usage"]
        content = False
        for choice in event.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.text.append(delta["content"])
                content = True
            for call in delta.get("tool_calls") or []:
                slot = self.calls.setdefault(int(call.get("index", 0)), {"name": "", "arguments": ""})
                function = call.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
                content = True
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return content

    def answer(self, latency_ms: float, ttft_ms: float | None) -> Answer:
        return Answer(
            text="".join(self.text),
            calls=[Call(c["name"], c["arguments"]) for _, c in sorted(self.calls.items())],
            finish_reason=self.finish_reason,
            prompt_tokens=self.usage.get("prompt_tokens"),
            completion_tokens=self.usage.get("completion_tokens"),
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            error=self.error,
        )
