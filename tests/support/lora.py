"""LoRA adapters for a real base GGUF, written with the ``gguf`` package in llama.cpp's adapter format
(general.type=adapter, adapter.type=lora, adapter.lora.alpha; ``<tensor>.lora_a``/``.lora_b``)."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from lumbung.store.gguf_info import read_gguf


def write_lora(
    base: Path,
    path: Path,
    *,
    targets: tuple[str, ...] = ("attn_q", "attn_v"),
    rank: int = 8,
    alpha: float = 8.0,
    magnitude: float = 0.5,
    seed: int = 7,
) -> Path:
    """An adapter with known non-zero weights on ``targets`` of every block of ``base`` (their names
    and shapes read from the base file)."""
    info = read_gguf(base)
    arch = str(info.metadata["general.architecture"])
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    writer.add_name("test lora")
    for tensor in info.tensors:
        stem = tensor.name.removesuffix(".weight")
        if not tensor.name.endswith(".weight") or stem.split(".")[-1] not in targets:
            continue
        n_in, n_out = tensor.shape  # ggml order: ne[0] is the input width
        # numpy shapes are ggml's reversed: lora_a is ne [n_in, rank], lora_b is ne [rank, n_out].
        a = rng.standard_normal((rank, n_in)).astype(np.float32) * magnitude
        b = rng.standard_normal((n_out, rank)).astype(np.float32) * magnitude
        writer.add_tensor(f"{tensor.name}.lora_a", a)
        writer.add_tensor(f"{tensor.name}.lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
