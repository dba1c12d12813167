"""Which files the store accepts, and the check each must pass before it is stored.

Weights are GGUF or safetensors only. Pickle-based formats (PyTorch ``.bin``/``.pt``, ``.ckpt``,
``.pkl``) can run code when loaded, so they are never downloaded. A few small text/JSON files that
travel with safetensors weights (config, tokenizer, chat template) are stored as metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from lumbung.errors import InvalidModelFile, UnsafeFile

FileKind = Literal["gguf", "safetensors", "metadata"]

PICKLE_SUFFIXES = (
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".pkl",
    ".pickle",
    ".joblib",
    ".npy",
    ".npz",
    ".h5",
    ".msgpack",
)
METADATA_NAMES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.json",
        "vocab.txt",
        "merges.txt",
        "tokenizer.model",  # sentencepiece protobuf, not pickle
        "chat_template.jinja",
        "chat_template.json",
        "preprocessor_config.json",
        "model.safetensors.index.json",
    }
)


def kind_of(path: str) -> FileKind | None:
    """The kind of a repo file by name, or None for files the store ignores."""
    name = path.rsplit("/", 1)[-1].lower()
    if name.endswith(".gguf"):
        return "gguf"
    if name.endswith(".safetensors"):
        return "safetensors"
    if name in METADATA_NAMES:
        return "metadata"
    return None


def is_pickle(path: str) -> bool:
    return path.lower().endswith(PICKLE_SUFFIXES)


def require_accepted(path: str) -> FileKind:
    """The kind of a file someone asked for by name; refuses pickle and unknown formats."""
    if is_pickle(path):
        raise UnsafeFile(
            f"refusing {path!r}: pickle-based weights can run code when loaded; "
            "lumbung accepts only GGUF and safetensors"
        )
    kind = kind_of(path)
    if kind is None:
        raise UnsafeFile(f"refusing {path!r}: not a GGUF or safetensors file")
    return kind


def validate_safetensors(path: Path, display: str) -> None:
    """Header, tensor offsets and coverage, checked by the safetensors library itself."""
    import safetensors

    try:
        with safetensors.safe_open(str(path), "np") as handle:
            handle.keys()
    except Exception as exc:  # the library raises its own SafetensorError and OS errors
        raise InvalidModelFile(f"{display}: not a valid safetensors file: {exc}") from exc


def validate(path: Path, kind: FileKind, display: str) -> None:
    """Check a file's structure before it enters the store (GGUF: see gguf_info)."""
    if kind == "gguf":
        from lumbung.store.gguf_info import read_gguf

        read_gguf(path, display)
    elif kind == "safetensors":
        validate_safetensors(path, display)
