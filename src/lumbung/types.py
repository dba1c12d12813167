"""Core types: the narrow waist between API surfaces and backends.

Surfaces translate their wire format into these and back; backends consume and produce only these.
Plain dataclasses (not pydantic): they are built per request and per token, and validated already.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Literal

# Texts, or token ids (OpenAI's embeddings accept both; a backend may refuse ids).
EmbeddingInputs = list[str] | list[list[int]]
Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "cancelled", "error"]


_ids = random.Random()  # seeded from the OS once; ids need to be unique, not secret (no syscall per id)


def new_id(prefix: str) -> str:
    return f"{prefix}-{_ids.getrandbits(96):024x}"


@dataclass(slots=True)
class ToolCall:
    """A call, or in a stream a fragment of one: a fragment with an ``id`` opens call ``index``
    (carrying its name); a fragment without one appends ``arguments`` to that call."""

    id: str
    name: str
    arguments: str  # JSON text, as OpenAI carries it
    index: int = 0


@dataclass(slots=True)
class Message:
    role: Role
    content: str | None = None
    name: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    reasoning: str | None = None


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    strict: bool = False


@dataclass(slots=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repeat_penalty: float = 1.0
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    logprobs: int | None = None  # None: off; N >= 0: the chosen token's logprob and the N most likely
    logit_bias: dict[int, float] = field(default_factory=dict)  # token id -> added logit, -100..100
    speculative: bool | None = None  # speculative decoding on/off for this request; None: the model's


@dataclass(slots=True)
class ResponseFormat:
    type: Literal["text", "json_object", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool = False


@dataclass(slots=True)
class ChatRequest:
    model: str
    messages: list[Message]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    response_format: ResponseFormat = field(default_factory=ResponseFormat)
    tools: list[Tool] = field(default_factory=list)
    tool_choice: str | dict[str, Any] = "auto"
    parallel_tool_calls: bool = True
    think: bool | None = None  # reasoning on/off where the template has a switch; None: its default
    user: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    id: str = field(default_factory=lambda: new_id("req"))  # shared by the choices of one API request
    created: int = field(default_factory=lambda: int(time.time()))
    fanout: int = (
        1  # sequences its API request runs at once (n choices); an engine refuses more than it holds
    )


@dataclass(slots=True)
class CompletionRequest:
    """A raw prompt (legacy completions, Ollama generate with raw=True): no chat template."""

    model: str
    prompt: str
    sampling: SamplingParams = field(default_factory=SamplingParams)
    id: str = field(default_factory=lambda: new_id("req"))  # shared by the choices of one API request
    created: int = field(default_factory=lambda: int(time.time()))
    fanout: int = 1  # sequences its API request runs at once (prompts x n choices)


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class TokenLogprob:
    token: str
    logprob: float
    bytes: list[int] | None = None
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass(slots=True)
class Chunk:
    """One step of a generation stream.

    ``text`` is new visible text; ``finish_reason`` and ``usage`` arrive on the last chunk only.
    """

    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    logprobs: list[TokenLogprob] = field(default_factory=list)
    stop_sequence: str | None = None  # the stop string that ended the answer (Anthropic reports it)
    # On the first chunk, where the backend knows them then: the prompt's tokens and how many came
    # from the prefix cache (completion_tokens 0), so a stream can report its input up front.
    prompt_usage: Usage | None = None


@dataclass(slots=True)
class Completion:
    """A whole answer: the collected stream."""

    text: str
    finish_reason: FinishReason
    usage: Usage
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    stop_sequence: str | None = None


@dataclass(slots=True)
class ModelInfo:
    id: str
    owned_by: str = "lumbung"
    created: int = 0
    aliases: list[str] = field(default_factory=list)
    context_length: int | None = None
    loaded: bool = False
    details: dict[str, Any] = field(default_factory=dict)
