"""Small real GGUF files built with the ``gguf`` package, and broken ones made from them."""

from __future__ import annotations

import struct
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


def _kv(key: str, fmt: str, vtype: int, value: int) -> bytes:
    raw = key.encode()
    return struct.pack("<Q", len(raw)) + raw + struct.pack("<I", vtype) + struct.pack(fmt, value)


def split_gguf(src: Path, out_dir: Path, prefix: str, parts: int = 2) -> list[Path]:
    """Split a real GGUF the way llama.cpp's gguf-split does (metadata in part 1, split.* keys in
    every part, tensors divided in order), copying bytes without decoding the big metadata arrays."""
    from lumbung.store.gguf_info import read_gguf

    info = read_gguf(src)
    data = src.read_bytes()
    per = -(-len(info.tensors) // parts)
    groups = [info.tensors[i * per : (i + 1) * per] for i in range(parts)]
    paths = []
    for no, group in enumerate(groups):
        split = (
            _kv(gguf.Keys.Split.LLM_KV_SPLIT_NO, "<H", gguf.GGUFValueType.UINT16, no)
            + _kv(gguf.Keys.Split.LLM_KV_SPLIT_COUNT, "<H", gguf.GGUFValueType.UINT16, parts)
            + _kv(
                gguf.Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT, "<i", gguf.GGUFValueType.INT32, len(info.tensors)
            )
        )
        metadata = data[24 : info.metadata_end] + split if no == 0 else split
        n_kv = (len(set(info.metadata) | set(info.array_lengths)) + 3) if no == 0 else 3
        infos, body, offset = b"", [], 0
        for t in group:
            name = t.name.encode()
            infos += struct.pack("<Q", len(name)) + name + struct.pack("<I", len(t.shape))
            infos += b"".join(struct.pack("<Q", d) for d in t.shape) + struct.pack("<IQ", t.type, offset)
            start = info.data_offset + t.offset
            padded = -(-t.n_bytes // info.alignment) * info.alignment
            body.append(data[start : start + t.n_bytes].ljust(padded, b"\0"))
            offset += padded
        head = struct.pack("<IIQQ", gguf.GGUF_MAGIC, info.version, len(group), n_kv) + metadata + infos
        head = head.ljust(-(-len(head) // info.alignment) * info.alignment, b"\0")
        path = out_dir / f"{prefix}-{no + 1:05d}-of-{parts:05d}.gguf"
        with path.open("wb") as out:
            out.write(head)
            out.writelines(body)
        paths.append(path)
    return paths
