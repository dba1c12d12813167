"""The manifest: one JSON file per stored model, saying where every byte came from.

Blobs are named by their sha256, so a manifest plus the blobs it lists is the whole model. Manifests
are written to a temporary file and renamed, so a crash leaves the old one or the new one, never half.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lumbung.errors import StoreError
from lumbung.store.formats import FileKind

SCHEMA_VERSION = 1
_SHA256 = r"^[0-9a-f]{64}$"
Checked = Literal["hub-sha256", "git-sha1", "package-sha256", "local"]


class StoredFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Path of the file in its repository (its name in views and bundles).")
    kind: FileKind
    size: int = Field(ge=0)
    sha256: str = Field(pattern=_SHA256)
    mtime_ns: int = Field(default=0, description="The blob's mtime when last verified: the cheap check.")
    checked_against: Checked = Field(description="What the sha256 was proven against when the file arrived.")


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["hf", "ms", "file", "embedded"]
    repo: str | None = None
    revision: str | None = Field(default=None, description="The revision asked for (branch, tag or commit).")
    commit: str | None = Field(default=None, description="The commit the revision resolved to when pulled.")
    endpoint: str | None = None
    path: str | None = None


class GgufSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    architecture: str | None
    name: str | None = None
    parameters: int
    quantization: str | None
    context_length: int | None
    chat_template: bool
    embedding: bool = False
    size_label: str | None = None
    split_count: int = 1
    adapter: bool = False  # a LoRA adapter: served over its base model (config `adapters:`), not alone


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    name: str = Field(description="The served model id.")
    reference: str = Field(description="The canonical reference it was pulled from.")
    aliases: list[str] = Field(default_factory=list)
    source: Source
    license: str | None = None
    format: Literal["gguf", "safetensors"]
    files: list[StoredFile]
    gguf: GgufSummary | None = None
    pulled_at: str = Field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    verified_at: str | None = Field(
        default=None, description="When `lumbung verify` last re-hashed every file and all matched."
    )

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def weights(self) -> list[StoredFile]:
        return [f for f in self.files if f.kind == self.format]

    @property
    def digest(self) -> str:
        """A stable id of the model's content (Ollama's `digest`): sha256 over its files' hashes."""
        joined = "\n".join(f"{f.path} {f.sha256}" for f in sorted(self.files, key=lambda f: f.path))
        return hashlib.sha256(joined.encode()).hexdigest()

    @property
    def weights_digest(self) -> str:
        """Ollama's ``digest`` of the model: its GGUF's sha256 (the manifest's ``digest`` when split)."""
        weights = self.weights
        return weights[0].sha256 if len(weights) == 1 else self.digest

    def names(self) -> list[str]:
        return [self.name, self.reference, *self.aliases]


def manifest_key(name: str) -> str:
    """A file name for a model name: readable, and unique thanks to a short hash of the name."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:80] or "model"
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary sibling, fsync, rename: readers see the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def dump(manifest: Manifest) -> bytes:
    return (json.dumps(manifest.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n").encode()


def load(path: Path) -> Manifest:
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except (OSError, ValidationError, ValueError) as exc:
        raise StoreError(f"manifest {path} is unreadable or invalid: {exc}") from exc
