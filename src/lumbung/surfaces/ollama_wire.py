"""Ollama's native API requests as they arrive on the wire.

Ollama itself is lenient (it decodes JSON into Go structs): numbers may be ints or floats, unknown
fields are ignored. lumbung accepts the same, logs unknown fields once, and refuses what it cannot
honour in the translator.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class OptionsIn(_Wire):
    # sampling (honoured)
    temperature: Annotated[float, Field(ge=0.0)] | None = None
    top_k: Annotated[int, Field(ge=0)] | None = None
    top_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    min_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    seed: int | None = None
    num_predict: int | None = None
    stop: list[str] | None = None
    repeat_penalty: Annotated[float, Field(ge=0.0)] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    # sampling lumbung's engine does not have
    repeat_last_n: int | None = None
    typical_p: float | None = None
    tfs_z: float | None = None
    mirostat: int | None = None
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None
    penalize_newline: bool | None = None
    # resources: the server's configuration decides these
    num_ctx: int | None = None
    num_keep: int | None = None
    num_batch: int | None = None
    num_gpu: int | None = None
    main_gpu: int | None = None
    num_thread: int | None = None
    low_vram: bool | None = None
    numa: bool | None = None
    use_mmap: bool | None = None
    use_mlock: bool | None = None
    vocab_only: bool | None = None
    logits_all: bool | None = None
    embedding_only: bool | None = None


class FunctionCallIn(_Wire):
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class ToolCallIn(_Wire):
    id: str | None = None
    function: FunctionCallIn


class MessageIn(_Wire):
    role: str
    content: str | None = None
    thinking: str | None = None
    images: list[Any] | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


class FunctionDefIn(_Wire):
    name: Annotated[str, Field(min_length=1)]
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolIn(_Wire):
    type: str = "function"
    function: FunctionDefIn


Format = str | dict[str, Any] | None
KeepAlive = Any  # a duration string or seconds; checked by ollama.keep_alive_seconds, one clear error
Think = bool | str | None


class ChatIn(_Wire):
    model: Annotated[str, Field(min_length=1)]
    messages: list[MessageIn] = Field(default_factory=list)
    tools: list[ToolIn] | None = None
    format: Format = None
    options: OptionsIn | None = None
    stream: bool | None = None
    keep_alive: KeepAlive = None
    think: Think = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None


class GenerateIn(_Wire):
    model: Annotated[str, Field(min_length=1)]
    prompt: str | None = None
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    raw: bool | None = None
    images: list[Any] | None = None
    format: Format = None
    options: OptionsIn | None = None
    stream: bool | None = None
    keep_alive: KeepAlive = None
    think: Think = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None


class EmbedIn(_Wire):
    model: Annotated[str, Field(min_length=1)]
    input: str | list[str]
    truncate: bool | None = None
    options: OptionsIn | None = None
    keep_alive: KeepAlive = None
    dimensions: Annotated[int, Field(ge=1)] | None = None


class EmbeddingsIn(_Wire):
    """The older single-input endpoint, /api/embeddings."""

    model: Annotated[str, Field(min_length=1)]
    prompt: str
    options: OptionsIn | None = None
    keep_alive: KeepAlive = None


class ShowIn(_Wire):
    model: str | None = None
    name: str | None = None  # the older spelling
    verbose: bool | None = None
