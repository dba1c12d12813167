"""LoRA adapters (GGUF) over a loaded model, and the sets of them a sequence decodes with.

llama.cpp applies adapters per *context* (``llama_set_adapters_lora``), not per sequence: every token
of one ``llama_decode`` sees the same adapters. So the engine decodes sequences with different
adapter sets in different steps (scheduler.py: ``adapter_turn``), and keys the prefix cache by the
set, since KV computed under an adapter is not the base model's.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import llama_cpp

from lumbung.engines.llamacpp.model import LlamaModel
from lumbung.errors import EngineError, ModelFileError

LoraKey = tuple[tuple[str, float], ...]  # (adapter name, scale) pairs; () is the base model
BASE: LoraKey = ()


class Adapter:
    """One ``llama_adapter_lora*``, valid while its model is loaded; freed by ``close``."""

    def __init__(self, model: LlamaModel, name: str, path: Path) -> None:
        if not path.is_file():
            raise ModelFileError(f"adapter {name!r}: file not found: {path}")
        ptr = llama_cpp.llama_adapter_lora_init(model.ptr, str(path).encode())
        if not ptr:
            raise ModelFileError(
                f"adapter {name!r}: llama.cpp could not load {path} as a LoRA adapter for "
                f"{model.path.name} (another base model's adapter, or not a LoRA GGUF?)"
            )
        self.name = name
        self.path = path
        self.ptr: ctypes.c_void_p | None = ptr
        # Its tensors live in buffers of their own: about the file's size (the header aside).
        self.size_bytes = path.stat().st_size

    def close(self) -> None:
        if self.ptr is not None:
            llama_cpp.llama_adapter_lora_free(self.ptr)
            self.ptr = None


@dataclass(frozen=True)
class LoraSet:
    """The adapters one sequence decodes with, and their scales."""

    adapters: tuple[Adapter, ...]
    scales: tuple[float, ...]

    @property
    def key(self) -> LoraKey:
        return tuple(zip((a.name for a in self.adapters), self.scales, strict=True))


def apply(ctx: llama_cpp.llama_context_p, lora: LoraSet | None) -> None:
    """Make ``lora`` (None: no adapter) the context's adapters for the next decodes."""
    if lora is None or not lora.adapters:
        rc = llama_cpp.llama_set_adapters_lora(ctx, None, 0, None)
    else:
        n = len(lora.adapters)
        ptrs = (llama_cpp.llama_adapter_lora_p_ctypes * n)(*[cast(Any, a.ptr) for a in lora.adapters])
        scales = (ctypes.c_float * n)(*lora.scales)
        rc = llama_cpp.llama_set_adapters_lora(ctx, ptrs, n, scales)
    if rc != 0:
        raise EngineError(f"llama_set_adapters_lora returned {rc}")
