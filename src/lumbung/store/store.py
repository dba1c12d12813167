"""The store on disk: content-addressed blobs plus one manifest per model, under ``<home>/models/``.

    models/blobs/sha256-<hex>           every file once, read-only, named by its sha256
    models/manifests/<key>.json         one per model (manifest.py)
    models/views/<key>/<repo path>      symlinks with the files' own names (split GGUFs need them)
    models/partial/<key>.part           downloads in progress, kept for resuming
    models/.lock                        pulls and imports hold it shared, removal holds it exclusive

Loading a model does the cheap check (every file present with its recorded size and mtime);
``verify`` re-hashes everything. Either refuses a mismatch with a message naming the file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from lumbung.errors import BadReference, IntegrityError, ModelNotInStore, StoreError
from lumbung.store import manifest as mf
from lumbung.store.manifest import Manifest, StoredFile

log = logging.getLogger(__name__)

HASH_BLOCK = 1 << 20


class BlobStat(NamedTuple):
    size: int
    mtime_ns: int


def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
            if on_bytes is not None:
                on_bytes(len(block))
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ModelStore:
    def __init__(self, home: Path) -> None:
        self.root = home / "models"
        self.blobs = self.root / "blobs"
        self.manifests = self.root / "manifests"
        self.views = self.root / "views"
        self.partial = self.root / "partial"

    def ensure(self) -> None:
        for d in (self.blobs, self.manifests, self.views, self.partial):
            d.mkdir(parents=True, exist_ok=True)

    # -- locking ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self, mode: int) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a+b") as fh:
            fcntl.flock(fh.fileno(), mode)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def shared(self) -> contextlib.AbstractContextManager[None]:
        """Held while adding blobs and manifests: removal waits, so it never collects a new blob."""
        return self._lock(fcntl.LOCK_SH)

    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        return self._lock(fcntl.LOCK_EX)

    # -- blobs -----------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        return self.blobs / f"sha256-{sha256}"

    def has_blob(self, sha256: str, size: int | None = None) -> bool:
        try:
            st = self.blob_path(sha256).stat()
        except OSError:
            return False
        return size is None or st.st_size == size

    def commit_blob(self, part: Path, sha256: str) -> BlobStat:
        """Move a finished, checked file into place under its hash (atomic rename)."""
        self.ensure()
        target = self.blob_path(sha256)
        os.chmod(part, 0o444)
        os.replace(part, target)
        fsync_dir(self.blobs)
        st = target.stat()
        return BlobStat(st.st_size, st.st_mtime_ns)

    def blob_stat(self, sha256: str) -> BlobStat:
        st = self.blob_path(sha256).stat()
        return BlobStat(st.st_size, st.st_mtime_ns)

    # -- manifests -------------------------------------------------------------------------
    def manifest_path(self, reference: str) -> Path:
        return self.manifests / f"{mf.manifest_key(reference)}.json"

    def models(self) -> list[Manifest]:
        out = []
        if self.manifests.is_dir():
            for path in sorted(self.manifests.glob("*.json")):
                try:
                    out.append(mf.load(path))
                except StoreError as exc:
                    log.warning("skipping %s", exc)
        return sorted(out, key=lambda m: m.name)

    def find(self, name: str) -> Manifest:
        """A model by its name, an alias, or any spelling of its reference."""
        manifests = self.models()
        for m in manifests:
            if name in m.names():
                return m
        try:
            from lumbung.store.refs import parse_reference

            ref = parse_reference(name)
        except (BadReference, StoreError):
            ref = None
        if ref is not None:
            for m in manifests:
                if ref.canonical() in m.names() or (ref.catalog_name and ref.catalog_name in m.names()):
                    return m
        raise ModelNotInStore(
            f"model {name!r} is not in the store (`lumbung list` shows what is; `lumbung pull` adds)"
        )

    def find_by_reference(self, reference: str) -> Manifest | None:
        path = self.manifest_path(reference)
        return mf.load(path) if path.exists() else None

    def save(self, manifest: Manifest) -> Manifest:
        """Write a manifest; names another model already answers to are dropped from its aliases."""
        self.ensure()
        taken = {n for m in self.models() if m.reference != manifest.reference for n in m.names()}
        if manifest.name in taken:
            raise StoreError(f"another stored model already answers to {manifest.name!r}")
        manifest = manifest.model_copy(
            update={
                "aliases": [
                    a
                    for a in dict.fromkeys(manifest.aliases)
                    if a not in taken and a not in (manifest.name, manifest.reference)
                ]
            }
        )
        self.build_view(manifest)
        mf.write_atomic(self.manifest_path(manifest.reference), mf.dump(manifest))
        return manifest

    def remove(self, name: str) -> tuple[Manifest, int]:
        """Delete a model's manifest and view, then every blob no manifest needs. Returns bytes freed."""
        with self.exclusive():
            manifest = self.find(name)
            self.manifest_path(manifest.reference).unlink(missing_ok=True)
            self._remove_view(manifest)
            return manifest, self.collect_garbage()

    def collect_garbage(self) -> int:
        """Delete unreferenced blobs; the caller holds the exclusive lock."""
        needed = {f.sha256 for m in self.models() for f in m.files}
        freed = 0
        if self.blobs.is_dir():
            for blob in self.blobs.glob("sha256-*"):
                if blob.name.removeprefix("sha256-") not in needed:
                    freed += blob.stat().st_size
                    blob.unlink()
        return freed

    # -- views -----------------------------------------------------------------------------
    def view_dir(self, manifest: Manifest) -> Path:
        return self.views / mf.manifest_key(manifest.reference)

    def view_path(self, manifest: Manifest, stored: StoredFile) -> Path:
        return self.view_dir(manifest) / stored.path

    def build_view(self, manifest: Manifest) -> Path:
        """Symlinks named like the repo's files, pointing at the blobs (atomic per link)."""
        from lumbung.store.refs import check_relative_path

        base = self.view_dir(manifest)
        for stored in manifest.files:
            check_relative_path(stored.path)
            link = base / stored.path
            if (
                not Path(os.path.normpath(link)).is_relative_to(base)
                or link.parent.resolve() != (base.resolve() / stored.path).parent
            ):  # no '..' and no planted directory symlink: the link stays in the view
                raise StoreError(f"file {stored.path!r} would leave the model's directory")
            link.parent.mkdir(parents=True, exist_ok=True)
            target = os.path.relpath(self.blob_path(stored.sha256), link.parent)
            if link.is_symlink() and os.readlink(link) == target:
                continue
            tmp = link.with_name(f".{link.name}.{os.getpid()}.link")
            tmp.unlink(missing_ok=True)
            os.symlink(target, tmp)
            os.replace(tmp, link)
        return base

    def _remove_view(self, manifest: Manifest) -> None:
        import shutil

        shutil.rmtree(self.view_dir(manifest), ignore_errors=True)

    # -- checks ----------------------------------------------------------------------------
    def cheap_check(self, manifest: Manifest) -> None:
        """Every file present with its recorded size and mtime; no reading."""
        for stored in manifest.files:
            blob = self.blob_path(stored.sha256)
            try:
                st = blob.stat()
            except OSError:
                raise IntegrityError(
                    f"model {manifest.name!r}: file {stored.path} is missing from the store ({blob}); "
                    f"pull or import it again"
                ) from None
            if st.st_size != stored.size:
                raise IntegrityError(
                    f"model {manifest.name!r}: file {stored.path} has {st.st_size} bytes, the manifest says "
                    f"{stored.size}; it was changed or damaged after it was stored. Refusing to load it: "
                    f"run `lumbung verify {manifest.name}` and pull it again"
                )
            if st.st_mtime_ns != stored.mtime_ns:
                raise IntegrityError(
                    f"model {manifest.name!r}: file {stored.path} was modified after it was stored "
                    f"(its mtime changed). Refusing to load it: run `lumbung verify {manifest.name}` "
                    f"to re-hash it (a match clears this), or pull it again"
                )

    def verify(self, manifest: Manifest, on_bytes: Callable[[int], None] | None = None) -> list[str]:
        """Re-hash every file; returns the problems (empty when all match) and records fresh mtimes."""
        problems = []
        refreshed = []
        for stored in manifest.files:
            blob = self.blob_path(stored.sha256)
            if not blob.is_file():
                problems.append(f"{stored.path}: missing ({blob})")
                refreshed.append(stored)
                continue
            actual = sha256_file(blob, on_bytes)
            st = blob.stat()
            if actual != stored.sha256 or st.st_size != stored.size:
                problems.append(
                    f"{stored.path}: sha256 {actual} ({st.st_size} bytes), expected "
                    f"{stored.sha256} ({stored.size} bytes)"
                )
                refreshed.append(stored)
            else:
                refreshed.append(stored.model_copy(update={"mtime_ns": st.st_mtime_ns}))
        if not problems:
            now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            updated = manifest.model_copy(update={"files": refreshed, "verified_at": now})
            mf.write_atomic(self.manifest_path(manifest.reference), mf.dump(updated))
        return problems

    def load_path(self, name: str) -> Path:
        """The path llama.cpp should open for a stored GGUF model, after the cheap check."""
        manifest = self.find(name)
        if manifest.format != "gguf":
            raise StoreError(
                f"model {manifest.name!r} is {manifest.format}; the local engine loads GGUF only"
            )
        self.cheap_check(manifest)
        self.build_view(manifest)
        return self.view_path(manifest, manifest.weights[0])
