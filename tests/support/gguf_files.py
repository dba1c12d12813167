"""Small real GGUF files built with the ``gguf`` package, and broken ones made from them."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np


def write_gguf(
    path: Path,
    *,
    arch: str = "llama",
    tensors: int = 3,
    shape: tuple[int, ...] = (4, 32),
    file_type: int = int(gguf.LlamaFileType.ALL_F32),
    context_length: int | None = 2048,
    chat_template: str | None = None,
    split: tuple[int, int] | None = None,
    pooling: int | None = None,
    seed: int = 0,
) -> Path:
    """A valid GGUF with ``tensors`` F32 tensors of ``shape`` (values from ``seed``)."""
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(f"tiny {arch}")
    writer.add_file_type(file_type)
    if context_length is not None:
        writer.add_context_length(context_length)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    if pooling is not None:
        writer.add_pooling_type(gguf.PoolingType(pooling))
    if split is not None:
        writer.add_uint16(gguf.Keys.Split.LLM_KV_SPLIT_NO, split[0])
        writer.add_uint16(gguf.Keys.Split.LLM_KV_SPLIT_COUNT, split[1])
    writer.add_array("tokenizer.ggml.tokens", [f"tok{i}" for i in range(100)])
    rng = np.random.default_rng(seed)
    for i in range(tensors):
        writer.add_tensor(f"blk.{seed}.{i}.weight", rng.standard_normal(shape).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def gguf_bytes(tmp: Path, **kwargs: object) -> bytes:
    path = write_gguf(tmp / "model.gguf", **kwargs)  # type: ignore[arg-type]
    data = path.read_bytes()
    path.unlink()
    return data
