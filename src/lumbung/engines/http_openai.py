"""An OpenAI-compatible upstream (vLLM, SGLang, llama-server, Ollama, DashScope, DeepSeek, OpenAI) as a
backend: core request -> Chat Completions (or legacy Completions) body, always streamed; SSE chunks ->
core ``Chunk``s. Only chunks with content are yielded, so the gateway's "first byte" is real content
and an error event before it still allows failover.

Its HTTP client is lumbung's lean HTTP/1.1 client (``http1``): measured against aiohttp and httpx by
bench/gateway_overhead_clients.py (docs/performance.md).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from lumbung.config import ProviderConfig
from lumbung.engines.base import Embeddings, Forwarded, ForwardRequest
from lumbung.engines.http_common import (
    TRANSPORT_ERRORS,
    dumps,
    event_error,
    provider_pool,
    sse_events,
    sse_payload_batches,
    status_error,
    transport_error,
)
from lumbung.errors import UnsupportedParameter, UpstreamError
from lumbung.types import (
    ChatRequest,
    Chunk,
    CompletionRequest,
    EmbeddingInputs,
    FinishReason,
    Message,
    ModelInfo,
    ToolCall,
    Usage,
)

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def message_body(msg: Message) -> dict[str, Any]:
    body: dict[str, Any] = {"role": msg.role, "content": msg.content}
    if msg.name:
        body["name"] = msg.name
    if msg.tool_calls:
        body["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in msg.tool_calls
        ]
    if msg.tool_call_id:
        body["tool_call_id"] = msg.tool_call_id
    return body


def request_body(request: ChatRequest | CompletionRequest) -> dict[str, Any]:
    """The wire body; only parameters that differ from the API's defaults are sent, so strict servers
    (OpenAI itself) never see an extension they do not know."""
    s = request.sampling
    body: dict[str, Any] = {"model": request.model, "stream": True, "stream_options": {"include_usage": True}}
    if isinstance(request, ChatRequest):
        body["messages"] = [message_body(m) for m in request.messages]
    else:
        body["prompt"] = request.prompt
    optional: dict[str, Any] = {
        "temperature": (s.temperature, 1.0),
        "top_p": (s.top_p, 1.0),
        "seed": (s.seed, None),
        "presence_penalty": (s.presence_penalty, 0.0),
        "frequency_penalty": (s.frequency_penalty, 0.0),
        "max_tokens": (s.max_tokens, None),
        "top_k": (s.top_k, 0),
        "min_p": (s.min_p, 0.0),
        "repetition_penalty": (s.repeat_penalty, 1.0),
    }
    for key, (value, default) in optional.items():
        if value != default:
            body[key] = value
    if s.stop:
        body["stop"] = s.stop
    if s.logit_bias:
        body["logit_bias"] = {str(token): bias for token, bias in s.logit_bias.items()}
    if s.logprobs is not None:
        raise UnsupportedParameter("logprobs are not forwarded to upstream providers yet", param="logprobs")
    if isinstance(request, ChatRequest):
        rf = request.response_format
        if rf.type == "json_object":
            body["response_format"] = {"type": "json_object"}
        elif rf.type == "json_schema":
            schema: dict[str, Any] = {"name": rf.name or "response", "schema": rf.schema or {}}
            if rf.strict:
                schema["strict"] = True
            body["response_format"] = {"type": "json_schema", "json_schema": schema}
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        **({"description": t.description} if t.description else {}),
                        "parameters": t.parameters or {"type": "object", "properties": {}},
                        **({"strict": True} if t.strict else {}),
                    },
                }
                for t in request.tools
            ]
            choice = request.tool_choice
            body["tool_choice"] = (
                choice
                if isinstance(choice, str)
                else {"type": "function", "function": {"name": choice["name"]}}
            )
            if not request.parallel_tool_calls:
                body["parallel_tool_calls"] = False
        if request.user:
            body["user"] = request.user
    return body


class ChunkReader:
    """Turns ``chat.completion.chunk`` objects into core chunks. A tool call is passed on as it
    arrives: it opens (id and name) with its first arguments, since a name always precedes them and
    may itself come in pieces; its further arguments follow as fragments. A call that never got
    arguments is delivered whole with the finish, which waits for the usage chunk that follows it."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.calls: dict[int, _Call] = {}
        self.finish: FinishReason | None = None
        self.usage: Usage | None = None

    def read(self, data: dict[str, Any]) -> Chunk | None:
        if data.get("error") is not None:
            raise event_error(self.provider, data["error"])
        if data.get("usage"):
            u = data["usage"]
            cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
            self.usage = Usage(
                int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0), int(cached)
            )
        text, reasoning, calls = [], [], []
        for choice in data.get("choices") or []:
            delta = choice.get("delta")
            if delta is None:  # legacy completions
                text.append(choice.get("text") or "")
            else:
                text.append(delta.get("content") or "")
                reasoning.append(delta.get("reasoning_content") or delta.get("reasoning") or "")
                for frag in delta.get("tool_calls") or []:
                    index = int(frag.get("index", len(self.calls)))
                    call = self.calls.setdefault(index, _Call(index))
                    fn = frag.get("function") or {}
                    out = call.add(frag.get("id") or "", fn.get("name") or "", fn.get("arguments") or "")
                    if out is not None:
                        calls.append(out)
            if choice.get("finish_reason"):
                self.finish = _FINISH.get(choice["finish_reason"], "stop")
        chunk = Chunk(text="".join(text), reasoning="".join(reasoning), tool_calls=calls)
        return chunk if chunk.text or chunk.reasoning or chunk.tool_calls else None

    def last(self) -> Chunk:
        if self.finish is None:
            raise UpstreamError(
                f"provider {self.provider!r}: the stream ended before the answer was complete"
            )
        calls = [c.whole() for _, c in sorted(self.calls.items()) if not c.opened]
        return Chunk(tool_calls=calls, finish_reason=self.finish, usage=self.usage or Usage())


class _Call:
    """One upstream tool call being received."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.id = ""
        self.name = ""
        self.arguments = ""
        self.opened = False

    def add(self, call_id: str, name: str, arguments: str) -> ToolCall | None:
        """The core fragment to pass on now, if any."""
        self.id = call_id or self.id
        if self.opened:
            return ToolCall("", "", arguments, self.index) if arguments else None
        self.name += name
        self.arguments += arguments
        if not (self.arguments and self.id and self.name):
            return None
        self.opened = True
        return ToolCall(self.id, self.name, self.arguments, self.index)

    def whole(self) -> ToolCall:
        return ToolCall(self.id, self.name, self.arguments, self.index)


DONE = b"data: [DONE]\n\n"


_USAGE_ON = b'{"stream_options":{"include_usage":true},'


def _as_sent(
    raw: bytes | None, body: dict[str, Any], model: str, stream: bool, client_usage: bool
) -> bytes | None:
    """The client's bytes, when they already say what the upstream must get (re-encoding costs more
    than the rest of the relay's request side); usage is switched on by adding the one key it needs."""
    if raw is None or body.get("model") != model or json.detect_encoding(raw) != "utf-8":
        return None  # renamed, or sent as UTF-16/32 or with a BOM (json accepts them): re-encoded
    if not stream or client_usage:
        return raw
    raw = raw.lstrip()
    if "stream_options" in body or not raw.startswith(b"{"):
        return None
    return _USAGE_ON + raw[1:]  # body has other keys (model, messages), so a comma follows


class PassThrough:
    """Relays an upstream OpenAI answer as bytes, rewriting only what it must: ``model`` (to the name
    the client asked for) and the usage chunk (kept for accounting, dropped when the client did not
    ask for it). Events before the first content are held back and sent together, so failover stays
    possible until content exists; an in-band error event raises like everywhere else."""

    def __init__(self, provider: str, model: str, public: str, client_usage: bool) -> None:
        self.provider = provider
        self.client_usage = client_usage
        self.usage = Usage()
        self._held: list[bytes] = []
        self.started = False
        self._swap = (
            [
                (f'"model":"{model}"'.encode(), f'"model":"{public}"'.encode()),
                (f'"model": "{model}"'.encode(), f'"model": "{public}"'.encode()),
            ]
            if model != public
            else []
        )

    def _rewrite(self, payload: bytes) -> bytes:
        for old, new in self._swap:
            payload = payload.replace(old, new, 1)
        return payload

    def _note_usage(self, data: dict[str, Any]) -> None:
        u = data.get("usage")
        if u:
            cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
            self.usage = Usage(
                int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0), int(cached)
            )

    def whole(self, raw: bytes) -> bytes:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise UpstreamError(f"provider {self.provider!r} sent an answer that is not JSON") from exc
        if not isinstance(data, dict):
            raise UpstreamError(f"provider {self.provider!r} sent an answer that is not a JSON object")
        if data.get("error") is not None and not data.get("choices"):
            raise event_error(self.provider, data["error"])
        self._note_usage(data)
        return self._rewrite(raw)

    def event(self, payload: bytes) -> bytes | None:
        """The bytes to send for one upstream event (None: hold back or drop)."""
        if payload == b"[DONE]":
            out = b"".join([*self._held, DONE])
            self._held.clear()
            return out
        data: dict[str, Any] | None = None
        if not self.started or b'"error"' in payload or b'"usage":{' in payload or b'"usage": {' in payload:
            try:
                data = json.loads(payload)
            except ValueError as exc:
                raise UpstreamError(f"provider {self.provider!r} sent a chunk that is not JSON") from exc
            if not isinstance(data, dict):
                raise UpstreamError(f"provider {self.provider!r} sent a chunk that is not a JSON object")
            if data.get("error") is not None:
                raise event_error(self.provider, data["error"])
            self._note_usage(data)
            if data.get("usage") and not data.get("choices") and not self.client_usage:
                return None
        framed = b"data: " + self._rewrite(payload) + b"\n\n"
        if self.started:
            return framed
        self._held.append(framed)
        if data is not None and _has_content(data):
            self.started = True
            out = b"".join(self._held)
            self._held.clear()
            return out
        return None


def _ends_stream(item: bytes) -> bool:
    return item.endswith(DONE)


def _is_whole(item: bytes) -> bool:
    return True


def _has_content(data: dict[str, Any]) -> bool:
    for choice in data.get("choices") or []:
        delta = choice.get("delta") or {}
        if (
            choice.get("finish_reason")
            or choice.get("text")
            or delta.get("content")
            or delta.get("tool_calls")
        ):
            return True
        if delta.get("reasoning_content") or delta.get("reasoning"):
            return True
    return False


class OpenAIHTTPBackend:
    """One OpenAI-compatible provider, with its own pooled keep-alive connections."""

    def __init__(self, config: ProviderConfig, api_key: str | None) -> None:
        self.name = config.name
        self.config = config
        headers = dict(config.headers)
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.http = provider_pool(config, str(config.base_url), headers)

    def models(self) -> list[ModelInfo]:
        return []

    async def stream(self, request: ChatRequest | CompletionRequest) -> AsyncGenerator[Chunk, None]:
        path = "/chat/completions" if isinstance(request, ChatRequest) else "/completions"
        reader = ChunkReader(self.name)
        exchange = self.http.post(path, dumps(request_body(request)))
        try:
            async with exchange as response:
                if response.status != 200:
                    raise status_error(self.name, response.status, response.headers, await response.read())
                async for _event, data in sse_events(self.name, response.iter_any()):
                    if data.strip() == "[DONE]":
                        exchange.answered()
                        break
                    try:
                        parsed = json.loads(data)
                    except ValueError as exc:
                        raise UpstreamError(f"provider {self.name!r} sent a chunk that is not JSON") from exc
                    chunk = reader.read(parsed)
                    if chunk is not None:
                        yield chunk
        except TRANSPORT_ERRORS as exc:
            raise transport_error(self.name, exc) from exc
        yield reader.last()

    def forward(self, request: ForwardRequest, model: str) -> Forwarded:
        """The pass-through path: the client's body with only ``model`` (and, streaming,
        ``stream_options.include_usage``) changed; its own bytes go upstream untouched when nothing
        needs to change. Yields the whole answer, or the stream's bytes (first item: everything up to
        the first content; last item ends with ``[DONE]``)."""
        body = request.body
        options = body.get("stream_options")
        client_usage = request.stream and isinstance(options, dict) and options.get("include_usage") is True
        payload = _as_sent(request.raw, body, model, request.stream, client_usage)
        if payload is None:
            body = {**body, "model": model}
            if request.stream:
                body["stream_options"] = {
                    **(options if isinstance(options, dict) else {}),
                    "include_usage": True,
                }
            payload = dumps(body)
        through = PassThrough(self.name, model, request.public, client_usage)
        items = self._relay(payload, through, request.stream)
        return Forwarded(items, _ends_stream if request.stream else _is_whole, lambda: through.usage)

    async def _relay(self, payload: bytes, through: PassThrough, stream: bool) -> AsyncGenerator[bytes, None]:
        # The consumer stops at the last item: ``answered`` before it keeps the connection alive.
        exchange = self.http.post("/chat/completions", payload)
        try:
            async with exchange as response:
                if response.status != 200:
                    raise status_error(self.name, response.status, response.headers, await response.read())
                if not stream:
                    answer = through.whole(await response.read())
                    exchange.answered()
                    yield answer
                    return
                async for batch in sse_payload_batches(self.name, response.iter_any()):
                    out = b"".join(filter(None, map(through.event, batch)))
                    if out:
                        if out.endswith(DONE):
                            exchange.answered()
                            yield out
                            return
                        yield out
        except TRANSPORT_ERRORS as exc:
            raise transport_error(self.name, exc) from exc
        raise UpstreamError(f"provider {self.name!r}: the stream ended before the answer was complete")

    async def embed(self, model: str, inputs: EmbeddingInputs) -> Embeddings:
        try:
            async with self.http.post("/embeddings", dumps({"model": model, "input": inputs})) as response:
                body = await response.read()
                if response.status != 200:
                    raise status_error(self.name, response.status, response.headers, body)
        except TRANSPORT_ERRORS as exc:
            raise transport_error(self.name, exc) from exc
        data = json.loads(body)
        vectors = [item["embedding"] for item in sorted(data["data"], key=lambda d: d.get("index", 0))]
        return Embeddings(vectors, int((data.get("usage") or {}).get("prompt_tokens") or 0))

    async def count_tokens(self, request: ChatRequest | CompletionRequest) -> int:
        raise UnsupportedParameter(f"provider {self.name!r} cannot count tokens", param="model")

    async def health(self) -> bool:
        try:
            async with self.http.get("/models") as response:
                return response.status < 500
        except TRANSPORT_ERRORS:
            return False

    async def aclose(self) -> None:
        await self.http.close()
