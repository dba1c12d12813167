"""KV cache element types: what one cell costs in each, and llama.cpp's names for them.

llama.cpp stores keys and values per layer as ggml tensors of the chosen type; the quantized ones
pack 32 elements in a block with one f16 scale: q8_0 is 34 bytes a block (8.5 bits an element), q4_0
18 bytes (4.5 bits), against f16's 64. A quantized V cache needs flash attention (llama.cpp refuses
it otherwise), so the engine turns flash attention on for them.
"""

from __future__ import annotations

import llama_cpp

from lumbung.config import KvCacheType
from lumbung.errors import EngineError
from lumbung.store.sizing import KV_TYPES

_GGML_TYPE: dict[KvCacheType, int] = {
    "f16": llama_cpp.GGML_TYPE_F16,
    "q8_0": llama_cpp.GGML_TYPE_Q8_0,
    "q4_0": llama_cpp.GGML_TYPE_Q4_0,
}


def cell_bytes(f16_cell_bytes: int, kv_type: KvCacheType) -> int:
    """What one token's keys and values cost in ``kv_type``, from their f16 cost."""
    return max(1, round(f16_cell_bytes * KV_TYPES[kv_type] / KV_TYPES["f16"]))


def ggml_type(kv_type: KvCacheType) -> int:
    return _GGML_TYPE[kv_type]


def flash_attention(kv_type: KvCacheType, configured: bool | None, name: str) -> bool | None:
    """Flash attention for the context: on for a quantized cache (refused if configured off)."""
    if kv_type == "f16":
        return configured
    if configured is False:
        raise EngineError(
            f"model {name}: a {kv_type} KV cache needs flash attention, which is configured off"
        )
    return True
