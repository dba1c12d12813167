"""The store as the source of served models: what ``lumbung serve`` offers, and how a stored
model's file reaches llama.cpp (after the cheap check), plus pull and delete while serving.

Every stored GGUF model is served under its name, with its reference and aliases as other names;
config entries (``models:`` with ``ref:``) take a stored model and override its settings. The
embedded default has its own entry (``serve_default_model``), so its manifest is not served twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from lumbung.config import ModelConfig
from lumbung.errors import (
    BadReference,
    ConfigError,
    IntegrityError,
    ModelFileError,
    ModelNotInStore,
    StoreError,
)
from lumbung.settings import Settings
from lumbung.store.manifest import Manifest
from lumbung.store.pull import Progress, PullOptions, pull
from lumbung.store.refs import parse_reference
from lumbung.store.store import ModelStore

log = logging.getLogger(__name__)


def stored_model_path(store: ModelStore, reference: str) -> Path:
    """The path to load, after the cheap check; any store problem is a broken model file."""
    try:
        return store.load_path(reference)
    except StoreError as exc:
        raise ModelFileError(str(exc)) from exc


def stored_adapter_path(store: ModelStore, reference: str) -> Path:
    """A stored LoRA adapter's path, after a full sha256 check against its manifest (adapters are
    small: megabytes, hashed in milliseconds), so a changed file is refused even with its old mtime."""
    try:
        manifest = store.find(reference)
        if manifest.gguf is None or not manifest.gguf.adapter:
            raise StoreError(
                f"{manifest.name!r} is not a LoRA adapter (its GGUF says general.type is not adapter)"
            )
        problems = store.verify(manifest)
        if problems:
            raise IntegrityError(
                f"adapter {manifest.name!r} does not match its manifest: {'; '.join(problems)}. "
                f"Refusing to load it: pull it again"
            )
        return store.load_path(reference)
    except StoreError as exc:
        raise ModelFileError(str(exc)) from exc


def checked_adapter(path: Path, sha256: str | None) -> Path:
    """An adapter named by path in the config: a LoRA GGUF, with the sha256 the config pins, if any."""
    from lumbung.store.gguf_info import read_gguf
    from lumbung.store.store import sha256_file

    try:
        info = read_gguf(path)
    except StoreError as exc:
        raise ModelFileError(str(exc)) from exc
    if info.get("general.type") != "adapter":
        raise ModelFileError(f"{path}: not a LoRA adapter (its GGUF says general.type is not adapter)")
    if sha256 is not None and (actual := sha256_file(path)) != sha256.lower():
        raise ModelFileError(f"{path}: sha256 is {actual}, the config pins {sha256}; refusing to load it")
    return path


def checked_gguf(path: Path) -> Path:
    """A GGUF named by path in the config: its structure is checked before llama.cpp sees it."""
    from lumbung.store.gguf_info import read_gguf

    try:
        read_gguf(path)
    except StoreError as exc:
        raise ModelFileError(str(exc)) from exc
    return path


def draft_model_path(home: Path, store: ModelStore, name: str) -> Callable[[], Path]:
    """Where speculative mode ``draft`` finds its model, as served models are found: an embedded
    model (name or reference), a GGUF file by path, or a model in the store (name or reference)."""
    from lumbung.store.embedded import ALL, embedded_model_path

    for embedded in ALL:
        if name in (embedded.entry.name, embedded.entry.reference):
            return partial(embedded_model_path, home, embedded)
    path = Path(name).expanduser()
    if path.suffix.lower() == ".gguf" or path.is_file():
        return partial(checked_gguf, path)
    try:
        manifest = store.find(name)
    except ModelNotInStore as exc:
        raise ConfigError(
            f"speculative draft model {name!r} is neither a GGUF file nor a model in the store; "
            f"give a path to a .gguf file or run `lumbung pull {name}` first"
        ) from exc
    return partial(stored_model_path, store, manifest.reference)


def details(manifest: Manifest | None) -> dict[str, Any]:
    """What the APIs can show about a stored model before it is loaded (ModelInfo.details keys)."""
    if manifest is None:
        return {}
    g = manifest.gguf
    out: dict[str, Any] = {
        "size_bytes": manifest.size,
        "digest": manifest.weights_digest,
        "reference": manifest.reference,
        "license": manifest.license,
        "format": manifest.format,
    }
    if g is not None:
        out |= {
            "architecture": g.architecture,
            "parameters": g.parameters,
            "quantization": g.quantization,
            "context_length_trained": g.context_length,
            "embedding": g.embedding,
        }
    return out


def created(manifest: Manifest | None) -> int:
    """When the model arrived in the store, as a Unix time (APIs show it as modified_at)."""
    if manifest is None:
        return int(time.time())
    return int(dt.datetime.fromisoformat(manifest.pulled_at).timestamp())


def config_manifest(store: ModelStore, model: ModelConfig) -> Manifest:
    assert model.ref is not None
    try:
        return store.find(model.ref)
    except ModelNotInStore as exc:
        raise ConfigError(
            f"model {model.id!r}: {model.ref!r} is not in the store; run `lumbung pull {model.ref}` first"
        ) from exc


def check_configured_files(settings: Settings, store: ModelStore) -> None:
    """Every model file the config names, checked before the server starts: a file that is missing
    or not a valid GGUF stops start-up with the model id and the config line, rather than failing
    its first request. (A file that breaks later is refused per request: ModelFileError.)"""
    for i, model in enumerate(settings.models):
        try:
            if model.path is not None:
                checked_gguf(model.path.expanduser())
            elif model.ref is not None:
                stored_model_path(store, config_manifest(store, model).reference)
        except ModelFileError as exc:
            where = settings.origin("models", i, "path" if model.path is not None else "ref")
            raise ConfigError(f"model {model.id!r} ({where}): {exc}") from exc
        draft = model.speculative.model if model.speculative and model.speculative.mode == "draft" else None
        if draft is not None and Path(draft).expanduser().suffix.lower() == ".gguf":
            try:  # a draft model's file: checked as the model's own (a store name is checked at config)
                checked_gguf(Path(draft).expanduser())
            except ModelFileError as exc:
                where = settings.origin("models", i, "speculative", "model")
                raise ConfigError(f"model {model.id!r} ({where}): speculative draft model: {exc}") from exc


def served_manifests(
    settings: Settings, store: ModelStore, taken: set[str]
) -> list[tuple[Manifest, list[str]]]:
    """Stored GGUF models to serve besides the config's, each with the names still free for it."""
    claimed = {config_manifest(store, m).reference for m in settings.models if m.ref}
    out = []
    for manifest in store.models():
        if manifest.format != "gguf" or manifest.source.kind == "embedded" or manifest.reference in claimed:
            continue
        if manifest.gguf is not None and manifest.gguf.adapter:  # served over a base model, not alone
            continue
        if manifest.name in taken:
            log.warning("not serving stored model %r: the name is taken by a configured model", manifest.name)
            continue
        aliases = [
            n
            for n in dict.fromkeys([manifest.reference, *manifest.aliases])
            if n not in taken and n != manifest.name
        ]
        taken.update([manifest.name, *aliases])
        out.append((manifest, aliases))
    return out


class StoreService:
    """Pull and delete for the API surfaces, keeping the served model list in step.

    ``on_change`` is called (on the event loop) after the store changed, to re-read the served list.
    """

    def __init__(self, settings: Settings, on_change: Callable[[], None] = lambda: None) -> None:
        self.settings = settings
        self.store = ModelStore(settings.home)
        self.on_change = on_change
        self._lock = asyncio.Lock()

    async def pull(self, raw: str, report: Callable[[Progress], None]) -> Manifest:
        if parse_reference(raw).kind == "file":  # API clients must not make the server read its own files
            raise BadReference(
                "file: references can only be added with `lumbung pull` on the server's machine"
            )
        s = self.settings
        options = PullOptions(s.offline, s.hf_endpoint, s.modelscope_endpoint)
        manifest = await asyncio.to_thread(pull, self.store, raw, options, report)
        await self._changed()
        return manifest

    async def delete(self, name: str) -> Manifest:
        manifest = self.store.find(name)
        if manifest.source.kind == "embedded":
            raise BadReference(f"{manifest.name!r} is an embedded model; it cannot be deleted")
        manifest, _ = await asyncio.to_thread(self.store.remove, name)
        await self._changed()
        return manifest

    async def _changed(self) -> None:
        async with self._lock:
            try:
                self.on_change()
            except ConfigError as exc:  # a pulled name collides: keep serving what was there
                log.warning("the served model list was not updated: %s", exc)
