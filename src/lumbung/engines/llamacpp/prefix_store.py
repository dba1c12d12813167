"""The prefix cache on disk: long cached prefixes saved when a model unloads (the server stops, or
its keep-alive ends) and read back when it loads again, so the first request after a restart that
shares a long system prompt is warm.

One file per model under ``HOME/cache/prefix/``: a magic line, a JSON header (what the KV was
computed by, and each entry's tokens, size and sha256), then each entry's KV as llama.cpp serialises
one sequence (``llama_state_seq_get_data``). The header names the model (a fingerprint of its file,
and its sha256 where the store knows it), the KV cache type and attention kernel (flash attention
stores V another way), the llama.cpp build and the layout; a file that disagrees on any of it is
refused with a warning naming what differs, and one that is cut short or corrupt is ignored with a
warning. Writes go to a temporary file renamed over the old one: a crash while saving leaves the
last good file, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp

log = logging.getLogger(__name__)

MAGIC = b"LUMBUNG-PREFIX-CACHE 1\n"
_HEADER_LIMIT = 64 * 2**20  # a header past this is not ours


@dataclass(frozen=True, slots=True)
class Entry:
    tokens: list[int]
    data: bytes


def file_for(folder: Path, model_id: str) -> Path:
    return folder / (re.sub(r"[^A-Za-z0-9._-]+", "_", model_id) + ".kv")


def fingerprint(path: Path) -> str:
    """A quick identity of a model file without a store manifest: size, and the sha256 of its first
    and last MiB (the GGUF header and the last tensors' bytes)."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        digest.update(f.read(2**20))
        f.seek(max(0, size - 2**20))
        digest.update(f.read(2**20))
    return "fingerprint:" + digest.hexdigest()


def identity(
    model: Path, sha256: str | None, kv_type: str, flash_attn: bool | None, layout: dict[str, int]
) -> dict[str, Any]:
    """What the KV was computed by. The file's fingerprint always; its sha256 where the store knows
    it (learnt after a first load for some models: compared only when both sides have it)."""
    return {
        "model": fingerprint(model),
        "sha256": sha256,
        "kv_type": kv_type,
        "flash_attn": flash_attn,
        "llama_cpp": llama_cpp.__version__,
        **layout,
    }


def save(path: Path, ident: dict[str, Any], entries: list[Entry]) -> None:
    header = {
        "identity": ident,
        "entries": [
            {"tokens": e.tokens, "size": len(e.data), "sha256": hashlib.sha256(e.data).hexdigest()}
            for e in entries
        ],
    }
    raw = json.dumps(header, separators=(",", ":")).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with tmp.open("wb") as f:
        f.write(MAGIC)
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for entry in entries:
            f.write(entry.data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def load(path: Path, ident: dict[str, Any]) -> list[Entry]:
    """The entries saved in ``path`` for this identity; none (with a warning) for a file made by
    another model or other settings, or one cut short or corrupt."""
    if not path.is_file():
        return []
    try:
        with path.open("rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                raise ValueError("not a lumbung prefix-cache file")
            length = int.from_bytes(f.read(8), "little")
            if not 0 < length <= _HEADER_LIMIT:
                raise ValueError("its header is cut short")
            header = json.loads(f.read(length))
            saved = header["identity"]
            differs = sorted(
                k
                for k in set(saved) | set(ident)
                if saved.get(k) != ident.get(k)
                and not (k == "sha256" and None in (saved.get(k), ident.get(k)))
            )
            if differs:
                log.warning(
                    "prefix cache file %s refused: made for another %s (%s); starting cold",
                    path,
                    " and ".join(differs),
                    ", ".join(f"{k} {saved.get(k)!r} here {ident.get(k)!r}" for k in differs),
                )
                return []
            entries = []
            for meta in header["entries"]:
                data = f.read(int(meta["size"]))
                if len(data) != int(meta["size"]):
                    raise ValueError("it is cut short")
                if hashlib.sha256(data).hexdigest() != meta["sha256"]:
                    raise ValueError("an entry's bytes do not match their sha256")
                entries.append(Entry([int(t) for t in meta["tokens"]], data))
            return entries
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("prefix cache file %s ignored: %s; starting cold", path, exc)
        return []
