"""How much memory a model needs to serve: its weights, and the KV cache each token of context costs,
computed from the model's own facts (GGUF metadata, or a Hugging Face ``config.json`` for vLLM), never
from its name.

KV bytes per token = layers x KV heads x (key length + value length) x bytes per element, the cache
llama.cpp (f16 by default; sliding-window layers counted at full size, an upper bound: lumbung keeps
them window-sized) and vLLM (the model's dtype, or ``--kv-cache-dtype``) allocate. Multi-head latent attention (DeepSeek V2/V3) caches one
compressed vector per layer instead: ``kv_lora_rank + qk_rope_head_dim`` elements.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lumbung.errors import InvalidModelFile
from lumbung.store.gguf_info import GgufFile, read_gguf

# Bytes per cached element for each KV cache type (llama.cpp's q8_0/q4_0: 34 and 18 bytes per 32).
KV_TYPES: dict[str, float] = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "fp8": 1.0,
    "q8_0": 34 / 32,
    "q4_0": 18 / 32,
}
_HF_DTYPES = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}


@dataclass(frozen=True)
class Shape:
    """The facts sizing needs, as the model's files state them."""

    source: str  # "gguf" or "config.json"
    architecture: str
    parameters: int | None
    weights_bytes: int
    n_layer: int
    kv_heads: tuple[int, ...]  # per layer (grouped-query attention: usually the same in each)
    key_length: int
    value_length: int  # 0 with latent attention (keys and values share one cached vector)
    context_trained: int | None
    sliding_window: int | None
    default_kv_type: str

    def kv_elements_per_token(self) -> int:
        return sum(self.kv_heads) * (self.key_length + self.value_length)

    def kv_bytes_per_token(self, kv_type: str | None = None) -> float:
        return self.kv_elements_per_token() * KV_TYPES[kv_type or self.default_kv_type]


@dataclass(frozen=True)
class Estimate:
    shape: Shape
    context: int  # tokens per sequence
    parallel: int  # sequences at once
    kv_type: str

    @property
    def tokens(self) -> int:
        return self.context * self.parallel

    @property
    def kv_per_token(self) -> float:
        return self.shape.kv_bytes_per_token(self.kv_type)

    @property
    def kv_bytes(self) -> int:
        return math.ceil(self.kv_per_token * self.tokens)

    @property
    def total_bytes(self) -> int:
        return self.shape.weights_bytes + self.kv_bytes

    def as_dict(self) -> dict[str, Any]:
        s = self.shape
        return {
            "source": s.source,
            "architecture": s.architecture,
            "parameters": s.parameters,
            "weights_bytes": s.weights_bytes,
            "layers": s.n_layer,
            "kv_heads": sorted(set(s.kv_heads)),
            "key_length": s.key_length,
            "value_length": s.value_length,
            "kv_type": self.kv_type,
            "kv_bytes_per_token": self.kv_per_token,
            "context": self.context,
            "parallel": self.parallel,
            "kv_bytes": self.kv_bytes,
            "total_bytes": self.total_bytes,
            "context_trained": s.context_trained,
            "sliding_window": s.sliding_window,
        }


def _int(value: Any, what: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidModelFile(f"{where}: {what} is {value!r}, not a count")
    return int(value)


def gguf_shape(parts: list[GgufFile]) -> Shape:
    """From a GGUF model (all parts of a split one): weights are its tensors' bytes."""
    first = parts[0]
    where, arch = str(first.path), first.architecture
    if arch is None:
        raise InvalidModelFile(f"{where}: no general.architecture")

    def key(name: str) -> Any:
        return first.get(f"{arch}.{name}")

    n_layer = _int(key("block_count"), "block_count", where)
    n_head_raw = key("attention.head_count")
    heads = n_head_raw if isinstance(n_head_raw, list) else [n_head_raw] * n_layer
    kv_raw = key("attention.head_count_kv")
    kv = kv_raw if isinstance(kv_raw, list) else [kv_raw if kv_raw is not None else heads[0]] * n_layer
    kv_heads = tuple(_int(h, "attention.head_count_kv", where) for h in kv)
    n_head = max(1, _int(max(heads), "attention.head_count", where))
    embd = _int(key("embedding_length"), "embedding_length", where)
    lora_rank = key("attention.kv_lora_rank")
    if lora_rank is not None:  # latent attention: one compressed vector + the rope part per layer
        rope = _int(key("rope.dimension_count") or 64, "rope.dimension_count", where)
        k_len, v_len, kv_heads = _int(lora_rank, "attention.kv_lora_rank", where) + rope, 0, (1,) * n_layer
    else:
        k_len = _int(key("attention.key_length") or embd // n_head, "attention.key_length", where)
        v_len = _int(key("attention.value_length") or k_len, "attention.value_length", where)
    context = key("context_length")
    window = key("attention.sliding_window")
    return Shape(
        source="gguf",
        architecture=arch,
        parameters=sum(p.n_parameters for p in parts),
        weights_bytes=sum(t.n_bytes for p in parts for t in p.tensors),
        n_layer=n_layer,
        kv_heads=kv_heads,
        key_length=k_len,
        value_length=v_len,
        context_trained=int(context) if isinstance(context, int) else None,
        sliding_window=int(window) if isinstance(window, int) else None,
        default_kv_type="f16",  # llama.cpp's default cache type
    )


def _safetensors_bytes(folder: Path) -> int:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        total = json.loads(index.read_text()).get("metadata", {}).get("total_size")
        if isinstance(total, int):
            return total
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


def config_shape(path: Path) -> Shape:
    """From a Hugging Face ``config.json`` (what vLLM serves); weights are the safetensors beside it."""
    where = str(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidModelFile(f"{where}: not a readable config.json ({exc})") from exc
    if not isinstance(raw, dict):
        raise InvalidModelFile(f"{where}: not a JSON object")
    cfg = {**raw, **(raw.get("text_config") or {})}  # multimodal models keep the language model's here
    n_layer = _int(cfg.get("num_hidden_layers"), "num_hidden_layers", where)
    n_head = max(1, _int(cfg.get("num_attention_heads"), "num_attention_heads", where))
    n_kv = _int(cfg.get("num_key_value_heads") or n_head, "num_key_value_heads", where)
    hidden = _int(cfg.get("hidden_size"), "hidden_size", where)
    if cfg.get("kv_lora_rank"):
        rope = _int(cfg.get("qk_rope_head_dim") or 64, "qk_rope_head_dim", where)
        k_len, v_len, n_kv = _int(cfg["kv_lora_rank"], "kv_lora_rank", where) + rope, 0, 1
    else:
        k_len = _int(cfg.get("head_dim") or hidden // n_head, "head_dim", where)
        v_len = k_len
    dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16")
    context = cfg.get("max_position_embeddings")
    window = cfg.get("sliding_window")
    archs = cfg.get("architectures") or [cfg.get("model_type") or "?"]
    return Shape(
        source="config.json",
        architecture=str(archs[0]),
        parameters=None,
        weights_bytes=_safetensors_bytes(path.parent),
        n_layer=n_layer,
        kv_heads=(n_kv,) * n_layer,
        key_length=k_len,
        value_length=v_len,
        context_trained=int(context) if isinstance(context, int) else None,
        sliding_window=int(window) if isinstance(window, int) else None,
        default_kv_type=_HF_DTYPES.get(dtype, "bf16"),
    )


def shape_of(path: Path) -> Shape:
    """A GGUF file, a ``config.json``, or a folder holding one."""
    if path.is_dir():
        path = path / "config.json"
    if path.name.endswith(".json"):
        return config_shape(path)
    return gguf_shape([read_gguf(path)])


def estimate(shape: Shape, context: int, parallel: int, kv_type: str | None = None) -> Estimate:
    kind = kv_type or shape.default_kv_type
    if kind not in KV_TYPES:
        raise ValueError(f"unknown KV cache type {kind!r} (one of {', '.join(KV_TYPES)})")
    return Estimate(shape, context, parallel, kind)
