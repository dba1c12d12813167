"""Pulling a model into the store: resolve the reference, list the repository at a revision, choose
files, download each into a hashed ``.part`` (resumable), check its size and published hash, check
its structure, move it into place under its sha256, and only then write the manifest.

A failure at any step leaves no blob that was not checked and no manifest that names a missing
blob; a partial download stays in ``models/partial/`` and the next pull resumes it.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from filelock import FileLock

from lumbung.errors import IntegrityError, InvalidModelFile, OfflineError, StoreError
from lumbung.store import formats
from lumbung.store.download import PartFile
from lumbung.store.gguf_info import check_split, facts, read_gguf
from lumbung.store.manifest import Checked, GgufSummary, Manifest, Source, StoredFile
from lumbung.store.refs import Hub, Reference, parse_reference
from lumbung.store.remote import HubClient, Listing, RemoteFile
from lumbung.store.select import select_files
from lumbung.store.store import ModelStore

log = logging.getLogger(__name__)

DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


@dataclass
class Progress:
    """One progress event (the shape of Ollama's pull stream)."""

    status: str
    file: str | None = None
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


Report = Callable[[Progress], None]
HubFactory = Callable[[Hub], HubClient]


@dataclass
class PullOptions:
    offline: bool = False
    hf_endpoint: str | None = None
    modelscope_endpoint: str | None = None


def default_hubs(options: PullOptions) -> HubFactory:
    def make(kind: Hub) -> HubClient:
        if kind == "hf":
            from lumbung.store.hf import HfHub

            return HfHub(options.hf_endpoint)
        from lumbung.store.ms import MsHub

        return MsHub(options.modelscope_endpoint)

    return make


def pull(
    store: ModelStore,
    raw: str,
    options: PullOptions,
    report: Report = lambda p: None,
    hubs: HubFactory | None = None,
) -> Manifest:
    """Pull ``raw`` (a reference or short name) into the store and return its manifest."""
    ref = parse_reference(raw)
    if ref.kind == "embedded":
        from lumbung.store.embedded import embedded_by_reference, register_embedded

        manifest = register_embedded(store, embedded_by_reference(ref.canonical()))
        report(Progress("success"))
        return manifest
    if ref.kind == "file":
        return add_file(store, ref, report)
    existing = store.find_by_reference(ref.canonical())
    if options.offline:
        if existing is None:
            raise OfflineError(
                f"{ref.canonical()} is not in the store and lumbung is offline (--offline / LUMBUNG_OFFLINE): "
                "no network call is made. Import it from a bundle (`lumbung import`) or pull it online."
            )
        store.cheap_check(existing)
        report(Progress("success"))
        return existing
    hub = (hubs or default_hubs(options))(ref.hub)
    report(Progress("pulling manifest"))
    listing = hub.listing(ref.repo or "", ref.effective_revision())
    chosen = select_files(listing.files, ref)
    with store.shared():
        store.ensure()
        _check_space(store, listing, chosen)
        stored = [_fetch(store, hub, listing, f, report) for f in chosen]
        report(Progress("verifying sha256 digest"))
        manifest = _manifest(store, ref, raw, existing, listing, stored)
        report(Progress("writing manifest"))
        manifest = store.save(manifest)
    report(Progress("success"))
    return manifest


def _part_key(listing: Listing, f: RemoteFile) -> str:
    if f.sha256:
        return f.sha256.lower()
    ident = f"{listing.hub}:{listing.endpoint}:{listing.repo}:{listing.commit or listing.revision}:{f.path}"
    return "path-" + hashlib.sha256(ident.encode()).hexdigest()


def _check_space(store: ModelStore, listing: Listing, chosen: list[RemoteFile]) -> None:
    needed = 0
    for f in chosen:
        if f.size is None or (f.sha256 and store.has_blob(f.sha256, f.size)):
            continue
        part = store.partial / f"{_part_key(listing, f)}.part"
        needed += f.size - (part.stat().st_size if part.exists() else 0)
    free = shutil.disk_usage(store.root).free
    if needed > free:
        raise StoreError(
            f"not enough disk space in {store.root}: the pull needs {needed / 1e9:.2f} GB more, "
            f"{free / 1e9:.2f} GB are free. Nothing was stored."
        )


def _fetch(store: ModelStore, hub: HubClient, listing: Listing, f: RemoteFile, report: Report) -> StoredFile:
    kind = formats.require_accepted(f.path)
    digest = f"sha256:{f.sha256}" if f.sha256 else None
    status = f"pulling {f.path}"
    if f.sha256 and store.has_blob(f.sha256, f.size):
        report(Progress(status, f.path, digest, f.size, f.size))
        st = store.blob_stat(f.sha256)
        return StoredFile(
            path=f.path,
            kind=kind,
            size=st.size,
            sha256=f.sha256.lower(),
            mtime_ns=st.mtime_ns,
            checked_against="hub-sha256",
        )
    part_path = store.partial / f"{_part_key(listing, f)}.part"
    # One download of a file at a time, across processes too (two clients pulling the same model).
    progress = Progress(status, f.path, digest, f.size, 0)

    def on_size(size: int) -> None:
        progress.completed = size
        report(progress)

    # One download of a file at a time, across processes too (two clients pulling the same model).
    with FileLock(str(part_path) + ".lock"):
        for attempt in (1, 2):
            with PartFile(part_path, git_size=f.size if f.git_oid else None, on_size=on_size) as part:
                resumed = part.size
                if f.size is not None and part.size > f.size:
                    part.restart()
                try:
                    if f.size is None or part.size < f.size:
                        hub.download(listing, f, part)
                except OSError as exc:
                    if exc.errno in DISK_FULL:
                        raise StoreError(
                            f"{f.path}: cannot write to {store.root}: {exc.strerror}. {part.size} bytes are kept "
                            f"in {part_path.name}; free some space and pull again to resume. Nothing was stored."
                        ) from exc
                    raise
                try:
                    sha = part.finish(size=f.size, sha256=f.sha256, git_oid=f.git_oid, display=f.path)
                except IntegrityError:
                    if resumed and attempt == 1:  # stale bytes from an earlier run: start over once
                        log.warning(
                            "%s: the resumed download did not check out; downloading it again", f.path
                        )
                        part_path.unlink(missing_ok=True)
                        continue
                    raise
            break
        try:
            formats.validate(part_path, kind, f.path)
        except InvalidModelFile:
            part_path.unlink(missing_ok=True)  # the hub's own bytes are malformed: resuming cannot help
            raise
        st = store.commit_blob(part_path, sha)
    checked: Checked = "hub-sha256" if f.sha256 else "git-sha1" if f.git_oid else "local"
    return StoredFile(
        path=f.path, kind=kind, size=st.size, sha256=sha, mtime_ns=st.mtime_ns, checked_against=checked
    )


def gguf_summary(store: ModelStore, files: list[StoredFile]) -> tuple[GgufSummary, str | None]:
    parts = [read_gguf(store.blob_path(f.sha256), f.path) for f in files if f.kind == "gguf"]
    check_split(parts)
    got = facts(parts)
    summary = GgufSummary(
        architecture=got.architecture,
        name=got.name,
        parameters=got.parameters,
        quantization=got.quantization,
        context_length=got.context_length,
        chat_template=got.chat_template,
        embedding=got.embedding,
        size_label=got.size_label,
        split_count=got.split_count,
        adapter=got.adapter,
    )
    return summary, got.license


def _catalog_license(ref: Reference) -> str | None:
    """The licence the catalogue records for a short name: for hubs that declare none."""
    from lumbung.store.catalog import entry

    found = entry(ref.catalog_name) if ref.catalog_name else None
    return found.license if found else None


def _manifest(
    store: ModelStore,
    ref: Reference,
    raw: str,
    existing: Manifest | None,
    listing: Listing,
    stored: list[StoredFile],
) -> Manifest:
    fmt: Literal["gguf", "safetensors"] = "gguf" if any(f.kind == "gguf" for f in stored) else "safetensors"
    summary, gguf_license = gguf_summary(store, stored) if fmt == "gguf" else (None, None)
    name = existing.name if existing else (ref.catalog_name or ref.canonical())
    aliases = list(existing.aliases if existing else [])
    aliases += [a for a in (ref.catalog_name, raw.strip()) if a]
    return Manifest(
        name=name,
        reference=ref.canonical(),
        aliases=aliases,
        source=Source(
            kind=listing.hub,
            repo=listing.repo,
            revision=listing.revision,
            commit=listing.commit,
            endpoint=listing.endpoint,
        ),
        license=listing.license or gguf_license or _catalog_license(ref),
        format=fmt,
        files=stored,
        gguf=summary,
    )


def add_file(store: ModelStore, ref: Reference, report: Report = lambda p: None) -> Manifest:
    """``file:/path.gguf``: copy the file into the store, check the copy, keep it under its hash."""
    assert ref.path is not None
    src: Path = ref.path
    if not src.is_file():
        raise StoreError(f"{src}: no such file")
    kind = formats.require_accepted(src.name)
    if kind == "metadata":
        raise StoreError(f"{src}: a model file must be GGUF or safetensors")
    progress = Progress(f"copying {src.name}", src.name, None, src.stat().st_size, 0)

    def on_size(size: int) -> None:
        progress.completed = size
        report(progress)

    with store.shared():
        store.ensure()
        part_path = store.partial / f"file-{hashlib.sha256(str(src).encode()).hexdigest()}.part"
        with PartFile(part_path, on_size=on_size) as part:
            part.restart()
            try:
                with src.open("rb") as fh:
                    while block := fh.read(1 << 20):
                        part.write(block)
                sha = part.finish(size=None, sha256=None, git_oid=None, display=src.name)
            except OSError as exc:
                part.close()
                part_path.unlink(missing_ok=True)
                raise StoreError(f"{src.name}: cannot copy into {store.root}: {exc.strerror}") from exc
        try:
            formats.validate(part_path, kind, src.name)  # the copy, so what is checked is what is kept
        except InvalidModelFile:
            part_path.unlink(missing_ok=True)
            raise
        st = store.commit_blob(part_path, sha)
        stored = [
            StoredFile(
                path=src.name,
                kind=kind,
                size=st.size,
                sha256=sha,
                mtime_ns=st.mtime_ns,
                checked_against="local",
            )
        ]
        summary, lic = gguf_summary(store, stored) if kind == "gguf" else (None, None)
        existing = store.find_by_reference(ref.canonical())
        manifest = Manifest(
            name=existing.name if existing else ref.canonical(),
            reference=ref.canonical(),
            aliases=existing.aliases if existing else [],
            source=Source(kind="file", path=str(src)),
            license=lic,
            format="gguf" if kind == "gguf" else "safetensors",
            files=stored,
            gguf=summary,
        )
        manifest = store.save(manifest)
    report(Progress("success"))
    return manifest
