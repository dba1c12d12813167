"""The backend protocol every engine and upstream provider implements, and the stream collector.

A backend streams core ``Chunk``s; a non-streaming answer is the collected stream (``collect``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from lumbung.errors import InternalError
from lumbung.types import (
    ChatRequest,
    Chunk,
    Completion,
    CompletionRequest,
    EmbeddingInputs,
    ModelInfo,
    TokenLogprob,
    ToolCall,
    Usage,
)


@dataclass(slots=True)
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int


@runtime_checkable
class Backend(Protocol):
    """What the gateway needs of an engine or provider."""

    name: str

    def stream(self, request: ChatRequest | CompletionRequest) -> AsyncGenerator[Chunk, None]:
        """Generate; the last chunk carries ``finish_reason`` and ``usage``. Errors are raised."""
        ...

    async def embed(self, model: str, inputs: EmbeddingInputs) -> Embeddings: ...

    async def count_tokens(self, request: ChatRequest | CompletionRequest) -> int:
        """The prompt tokens ``request`` would use (chat template and tools included), generating nothing."""
        ...

    async def health(self) -> bool: ...

    def models(self) -> list[ModelInfo]: ...


@runtime_checkable
class Resident(Protocol):
    """A backend whose models stay loaded between requests (the local engine): Ollama's
    ``keep_alive`` and unload requests reach it through the gateway."""

    def set_keep_alive(self, model: str, seconds: float) -> None:
        """Seconds idle before ``model`` unloads, from now on (negative: forever)."""
        ...

    async def unload_when_idle(self, model: str) -> None:
        """Unload ``model`` now, or when its requests in flight have ended."""
        ...

    async def load(self, model: str) -> None:
        """Load ``model`` if it is not loaded, generating nothing."""
        ...


@dataclass(frozen=True, slots=True)
class ForwardRequest:
    """An OpenAI Chat Completions request to pass through as bytes: ``body`` as the client sent it
    (``raw``: its very bytes), answered under ``public``, the model name the client asked for."""

    body: dict[str, Any]
    raw: bytes | None
    public: str
    stream: bool

    def prompt_text(self) -> str:
        """The messages' text, for prefix affinity."""
        messages = self.body.get("messages") or []
        return "\x00".join(f"{m.get('role')}:{m.get('content')}" for m in messages if isinstance(m, dict))


@dataclass(frozen=True, slots=True)
class Forwarded:
    """One forwarded answer. ``items``: its bytes in order (streaming: the first item holds everything
    up to the first content, so the gateway may still fail over until it has it); ``is_last`` tells
    the final item; ``usage``: what the upstream reported, complete once the final item was read."""

    items: AsyncGenerator[bytes, None]
    is_last: Callable[[bytes], bool]
    usage: Callable[[], Usage]


@runtime_checkable
class Forwarder(Protocol):
    """A backend that can relay an OpenAI request as bytes (an OpenAI-compatible provider): the
    gateway drives it with the same failover, breaker, timeouts and accounting as ``stream``."""

    def forward(self, request: ForwardRequest, model: str) -> Forwarded:
        """Send ``request`` to ``model``, rewriting only what must change (the model's name)."""
        ...


@dataclass(frozen=True, slots=True)
class ModelStats:
    """One local model's engine as it stands now, for ``GET /metrics`` (read at scrape time). The
    counters count since the model loaded: they restart from 0 when it is loaded again."""

    model: str
    loaded: bool
    memory_bytes: int = 0  # weights, the KV cache allocated and loaded adapters
    parallel: int = 0  # sequences decoded together at most
    running: int = 0
    queued: int = 0
    kv_cells: int = 0  # the context's KV capacity, in cells (tokens)
    kv_cells_used: int = 0
    kv_bytes_per_cell: int = 0  # of the layers that keep every token (all layers but sliding-window ones)
    kv_window_bytes: int = 0  # a sliding-window model's window-sized part of the KV, allocated whole
    kv_bytes_per_sequence: int = 0  # the KV one sequence at the full context takes
    prefix_cache_entries: int = 0
    prefix_cache_cells: int = 0  # KV cells only the prefix cache holds
    prefix_cache_hits: int = 0
    prefix_cache_misses: int = 0
    prefix_cache_tokens: int = 0  # prompt tokens reused from the cache
    generated_tokens: int = 0
    refused: int = 0  # requests turned away at capacity (429)
    speculating: bool = False  # speculative decoding on for the model (or used by a request)
    draft_tokens: int = 0  # speculative draft tokens verified
    accepted_draft_tokens: int = 0  # of them, those the model agreed with
    fast_forwarded_tokens: int = 0  # forced by a grammar, decoded as a batch (not sampled one by one)


@runtime_checkable
class Measured(Protocol):
    """A backend that runs models itself (the local engine) and can say how each is doing."""

    def model_stats(self) -> list[ModelStats]: ...


@dataclass
class Collector:
    """Accumulates a chunk stream into a ``Completion``."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    last: Chunk | None = None

    def add(self, chunk: Chunk) -> None:
        if chunk.text:
            self.text.append(chunk.text)
        if chunk.reasoning:
            self.reasoning.append(chunk.reasoning)
        for call in chunk.tool_calls:
            self._add_call(call)
        self.logprobs.extend(chunk.logprobs)
        if chunk.finish_reason is not None:
            self.last = chunk

    def _add_call(self, call: ToolCall) -> None:
        if call.id or not self.tool_calls:
            self.tool_calls.append(ToolCall(call.id, call.name, call.arguments, call.index))
            return
        for whole in reversed(self.tool_calls):  # a fragment continues the call with its index
            if whole.index == call.index:
                whole.arguments += call.arguments
                return
        self.tool_calls.append(ToolCall(call.id, call.name, call.arguments, call.index))

    def result(self) -> Completion:
        if self.last is None or self.last.finish_reason is None or self.last.usage is None:
            raise InternalError("the backend's stream ended without a finish reason")
        return Completion(
            text="".join(self.text),
            finish_reason=self.last.finish_reason,
            usage=self.last.usage,
            reasoning="".join(self.reasoning),
            tool_calls=self.tool_calls,
            logprobs=self.logprobs,
            stop_sequence=self.last.stop_sequence,
        )


async def collect(stream: AsyncGenerator[Chunk, None]) -> Completion:
    collector = Collector()
    async for chunk in stream:
        collector.add(chunk)
    return collector.result()
