"""Local models: a GGUF served by the in-process engine, its LoRA adapters, and llama.cpp's AMX mode.

Part of the leaf ``lumbung.config`` package (imports nothing of lumbung): the engine reads these types
without settings importing the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The embedded models' names (store/catalog.py, store/embedded.py): the default, and Gemma beside it.
EMBEDDED_DEFAULT_ID = "smollm2:135m"
EMBEDDED_GEMMA_ID = "gemma3:270m"

# How to stretch a model's positions past its trained context (engines/llamacpp/context.py).
RopeScaling = Literal["linear", "yarn"]

# llama.cpp's AMX kernels: auto (tried once per model in a child process), on, off (engines/llamacpp/amx.py).
AmxMode = Literal["auto", "on", "off"]
# KV cache element types llama.cpp quantizes to on CPU (keys and values alike).
KvCacheType = Literal["f16", "q8_0", "q4_0"]

# Where speculative drafts come from (engines/llamacpp/speculative.py): off, n-grams of the sequence's
# own tokens (prompt lookup), or a smaller model with the same tokenizer.
SpeculativeMode = Literal["off", "ngram", "draft"]


class SpeculativeConfig(BaseModel):
    """Speculative decoding: guess several next tokens cheaply, verify them in one batch."""

    model_config = ConfigDict(extra="forbid")

    mode: SpeculativeMode = Field(
        default="ngram",
        description="off; ngram: drafts copied from earlier in the prompt or answer where its last "
        "`ngram` tokens occurred before (extraction, editing, code, JSON echoing input); draft: a "
        "smaller model with the same tokenizer (`model`) proposes them greedily, at the cost of its "
        "weights and a KV cache of its own (every slot's full context) in memory and a draft-model "
        "decode per draft token; per model only.",
    )
    max_draft: int = Field(default=8, ge=1, le=64, description="Most draft tokens verified per step.")
    ngram: int = Field(
        default=3, ge=1, le=8, description="Longest n-gram matched (shorter ones are tried after it)."
    )
    model: str | None = Field(
        default=None,
        description="mode draft: the draft model, a path to a GGUF file, an embedded model or a model "
        "in the store (reference or name); its vocabulary must be the served model's (checked at "
        "load: the model is refused otherwise).",
    )

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        return "off" if value is False else value  # YAML reads a bare `off` as false

    @model_validator(mode="after")
    def _draft_needs_model(self) -> SpeculativeConfig:
        if self.mode == "draft" and not self.model:
            raise ValueError("speculative mode `draft` needs `model` (the draft model)")
        return self


class AdapterConfig(BaseModel):
    """A LoRA adapter (GGUF) over a local model, served as a model of its own."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The adapter's name; it is served as `MODEL+NAME` unless `id` is set.")
    id: str | None = Field(default=None, description="Public model id for the base model with this adapter.")
    path: Path | None = Field(default=None, description="Path of the LoRA GGUF file.")
    ref: str | None = Field(
        default=None, description="An adapter in the store, by reference or name (`lumbung pull` it first)."
    )
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="The file's sha256, checked before loading (for `path`; stored adapters are "
        "always checked against their manifest).",
    )
    scale: float = Field(default=1.0, ge=0, description="How strongly the adapter applies (0: not at all).")

    @model_validator(mode="after")
    def _one_source(self) -> AdapterConfig:
        if (self.path is None) == (self.ref is None):
            raise ValueError(f"adapter {self.name!r}: set exactly one of `path` and `ref`")
        return self


class ModelConfig(BaseModel):
    """A local GGUF model served by the in-process engine."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Public model id, as clients send it in `model`.")
    path: Path | None = Field(default=None, description="Path of the GGUF file.")
    ref: str | None = Field(
        default=None,
        description="A model in the store, by reference (hf:, ms:, file:), short name or name "
        "(pull it first with `lumbung pull`).",
    )
    aliases: list[str] = Field(default_factory=list, description="Other names that reach this model.")
    chat_template: str | None = Field(
        default=None,
        description="A Jinja chat template (text, or a built-in name such as `gemma`), "
        "overriding the GGUF's own.",
    )
    tool_format: str | None = Field(
        default=None,
        description="Tool-call format: a family of the tool-call matrix in docs/api-compatibility.md "
        "(hermes, qwen3_coder, llama3, mistral, deepseek, gemma, harmony, glm, command_r_plus, ...; "
        "default: detected from the chat template, then the architecture).",
    )
    context_size: int | None = Field(
        default=None,
        ge=64,
        description="Tokens one request may use, prompt and answer (default: the global `context_size`, "
        "else the model's trained context, within the memory budget). Past the trained context only "
        "with `rope_scaling`.",
    )
    rope_scaling: RopeScaling | None = Field(
        default=None,
        description="Stretch the model's positions past its trained context to reach `context_size`: "
        "linear or yarn (answers past the trained length are usually worse; off unless set).",
    )
    parallel: int | None = Field(default=None, ge=1, le=64, description="Concurrent sequences.")
    keep_alive: float | None = Field(default=None, description="Seconds idle before unloading.")
    max_queue: int | None = Field(default=None, ge=0, description="Requests waiting beyond `parallel`.")
    prefix_cache_mb: float | None = Field(default=None, ge=0, description="Prefix cache memory (MiB).")
    kv_cache_type: KvCacheType | None = Field(
        default=None,
        description="KV cache element type: f16, q8_0 (about half the memory: twice the contexts in the "
        "same budget) or q4_0 (about a quarter); quantized caches run with flash attention on "
        "(default: the global `kv_cache_type`). Quality cost: docs/performance.md.",
    )
    deterministic: bool | None = Field(
        default=None,
        description="Same text for a request whatever runs beside it: batch-invariant decoding, no "
        "prefix cache, less throughput under concurrency (default: the global `deterministic`).",
    )
    embedding: bool = Field(default=False, description="An embedding model (pooling on).")
    speculative: SpeculativeConfig | None = Field(
        default=None,
        description="Speculative decoding for this model (default: the global `speculative`); "
        "`{mode: off}` turns it off here.",
    )
    adapters: list[AdapterConfig] = Field(
        default_factory=list,
        description="LoRA adapters over this model, each served as its own model id (`MODEL+NAME`).",
    )

    def adapter_id(self, adapter: AdapterConfig) -> str:
        return adapter.id or f"{self.id}+{adapter.name}"
