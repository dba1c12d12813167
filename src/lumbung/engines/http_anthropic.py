"""Anthropic's Messages API as a backend: core request -> ``POST /v1/messages`` (always streamed);
its typed SSE events -> core ``Chunk``s. Translation is in pure functions; the class is plumbing."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from lumbung.config import ProviderConfig
from lumbung.engines.base import Embeddings
from lumbung.engines.http_common import (
    TRANSPORT_ERRORS,
    dumps,
    event_error,
    provider_pool,
    sse_events,
    status_error,
    transport_error,
)
from lumbung.errors import UnsupportedParameter, UpstreamError
from lumbung.toolcalls.arguments import arguments_value
from lumbung.types import (
    ChatRequest,
    Chunk,
    CompletionRequest,
    EmbeddingInputs,
    FinishReason,
    ModelInfo,
    ToolCall,
    Usage,
)

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI-style clients often omit it
_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def messages_body(request: ChatRequest) -> dict[str, Any]:
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for msg in request.messages:
        if msg.role == "system":
            system.append(msg.content or "")
            continue
        role = "assistant" if msg.role == "assistant" else "user"
        content: list[dict[str, Any]] = []
        if msg.role == "tool":
            content.append(
                {"type": "tool_result", "tool_use_id": msg.tool_call_id, "content": msg.content or ""}
            )
        else:
            if msg.content:
                content.append({"type": "text", "text": msg.content})
            for call in msg.tool_calls:
                args = arguments_value(call.arguments or "{}")
                content.append(
                    {
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": args if isinstance(args, dict) else {},
                    }
                )
        if messages and messages[-1]["role"] == role:  # Anthropic wants alternating turns
            messages[-1]["content"].extend(content)
        else:
            messages.append({"role": role, "content": content})
    s = request.sampling
    body: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "max_tokens": s.max_tokens or DEFAULT_MAX_TOKENS,
        "stream": True,
    }
    if system:
        body["system"] = "\n\n".join(system)
    if s.temperature != 1.0:
        body["temperature"] = min(s.temperature, 1.0)
    if s.top_p != 1.0:
        body["top_p"] = s.top_p
    if s.top_k:
        body["top_k"] = s.top_k
    if s.stop:
        body["stop_sequences"] = s.stop
    if s.logit_bias:
        raise UnsupportedParameter("logit_bias is not supported by Anthropic providers", param="logit_bias")
    if request.response_format.type != "text":
        raise UnsupportedParameter(
            "response_format is not supported by Anthropic providers", param="response_format"
        )
    if request.tools and request.tool_choice != "none":
        body["tools"] = [
            {
                "name": t.name,
                "description": t.description or "",
                "input_schema": t.parameters or {"type": "object"},
            }
            for t in request.tools
        ]
        choice = request.tool_choice
        if isinstance(choice, dict):
            body["tool_choice"] = {"type": "tool", "name": choice["name"]}
        else:
            body["tool_choice"] = {"type": "any" if choice == "required" else "auto"}
        if not request.parallel_tool_calls:
            body["tool_choice"]["disable_parallel_tool_use"] = True
    if request.user:
        body["metadata"] = {"user_id": request.user}
    return body


class EventReader:
    """Anthropic stream events -> core chunks. A ``tool_use`` block opens its call (id and name) when
    it starts; each ``input_json_delta`` follows as an arguments fragment; a call that got no input
    closes with ``{}``."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.usage = Usage()
        self.tools: dict[int, list[Any]] = {}  # block index -> [call index, arguments sent]
        self.finish: FinishReason | None = None
        self.stopped = False

    def read(self, event: str, data: dict[str, Any]) -> Chunk | None:
        kind = data.get("type", event)
        block = int(data.get("index", 0) or 0)
        if kind == "error":
            raise event_error(self.provider, data.get("error") or data)
        if kind == "message_start":
            u = (data.get("message") or {}).get("usage") or {}
            self.usage.prompt_tokens = int(u.get("input_tokens") or 0) + int(
                u.get("cache_read_input_tokens") or 0
            )
            self.usage.cached_tokens = int(u.get("cache_read_input_tokens") or 0)
        elif kind == "content_block_start":
            start = data.get("content_block") or {}
            if start.get("type") == "tool_use":
                index = len(self.tools)
                self.tools[block] = [index, False]
                return Chunk(
                    tool_calls=[
                        ToolCall(start.get("id") or f"toolu_{index}", start.get("name", ""), "", index)
                    ]
                )
            if start.get("type") == "text" and start.get("text"):
                return Chunk(text=start["text"])
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return Chunk(text=delta["text"])
            if delta.get("type") == "thinking_delta" and delta.get("thinking"):
                return Chunk(reasoning=delta["thinking"])
            if delta.get("type") == "input_json_delta" and delta.get("partial_json") and block in self.tools:
                self.tools[block][1] = True
                return Chunk(tool_calls=[ToolCall("", "", delta["partial_json"], self.tools[block][0])])
        elif kind == "content_block_stop":
            if block in self.tools and not self.tools[block][1]:
                self.tools[block][1] = True
                return Chunk(tool_calls=[ToolCall("", "", "{}", self.tools[block][0])])
        elif kind == "message_delta":
            reason = (data.get("delta") or {}).get("stop_reason")
            if reason:
                self.finish = _FINISH.get(reason, "stop")
            out = (data.get("usage") or {}).get("output_tokens")
            if out is not None:
                self.usage.completion_tokens = int(out)
        elif kind == "message_stop":
            self.stopped = True
        return None

    def last(self) -> Chunk:
        if not self.stopped or self.finish is None:
            raise UpstreamError(
                f"provider {self.provider!r}: the stream ended before the answer was complete"
            )
        return Chunk(finish_reason=self.finish, usage=self.usage)


class AnthropicHTTPBackend:
    """One Anthropic Messages provider, with its own pooled keep-alive connections."""

    def __init__(self, config: ProviderConfig, api_key: str | None) -> None:
        self.name = config.name
        self.config = config
        headers = {"anthropic-version": API_VERSION, **config.headers}
        if api_key:
            headers["x-api-key"] = api_key
        base = str(config.base_url).removesuffix("/v1")
        self.http = provider_pool(config, base, headers)

    def models(self) -> list[ModelInfo]:
        return []

    async def stream(self, request: ChatRequest | CompletionRequest) -> AsyncGenerator[Chunk, None]:
        if not isinstance(request, ChatRequest):
            raise UnsupportedParameter("Anthropic providers take chat requests only", param="prompt")
        reader = EventReader(self.name)
        exchange = self.http.post("/v1/messages", dumps(messages_body(request)))
        try:
            async with exchange as response:
                if response.status != 200:
                    raise status_error(self.name, response.status, response.headers, await response.read())
                async for event, data in sse_events(self.name, response.iter_any()):
                    try:
                        parsed = json.loads(data)
                    except ValueError as exc:
                        raise UpstreamError(f"provider {self.name!r} sent an event that is not JSON") from exc
                    chunk = reader.read(event, parsed)
                    if chunk is not None:
                        yield chunk
                    if reader.stopped:
                        exchange.answered()
                        break
        except TRANSPORT_ERRORS as exc:
            raise transport_error(self.name, exc) from exc
        yield reader.last()

    async def embed(self, model: str, inputs: EmbeddingInputs) -> Embeddings:
        raise UnsupportedParameter(f"provider {self.name!r} (Anthropic) has no embeddings", param="model")

    async def count_tokens(self, request: ChatRequest | CompletionRequest) -> int:
        if not isinstance(request, ChatRequest):
            raise UnsupportedParameter("Anthropic providers take chat requests only", param="prompt")
        body = messages_body(request)
        for key in ("stream", "max_tokens", "temperature", "top_p", "top_k", "stop_sequences", "metadata"):
            body.pop(key, None)
        try:
            async with self.http.post("/v1/messages/count_tokens", dumps(body)) as response:
                raw = await response.read()
                if response.status != 200:
                    raise status_error(self.name, response.status, response.headers, raw)
        except TRANSPORT_ERRORS as exc:
            raise transport_error(self.name, exc) from exc
        try:
            return int(json.loads(raw)["input_tokens"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamError(f"provider {self.name!r} sent a token count lumbung cannot read") from exc

    async def health(self) -> bool:
        try:
            async with self.http.get("/v1/models") as response:
                return response.status < 500
        except TRANSPORT_ERRORS:
            return False

    async def aclose(self) -> None:
        await self.http.close()
