"""Bundles: a plain tar of manifests and blobs that carries models to machines with no network.

    lumbung-bundle.json            {"format": "lumbung-bundle", "version": 1, "models": [...]}
    manifests/<key>.json           one per model, exactly as stored
    blobs/sha256-<hex>             each file once, named by its hash

Import never extracts blindly: only those three kinds of member are accepted (regular files with
those exact name shapes: no links, devices, absolute paths or ``..``); every blob is re-hashed as
it streams in and must match its name and the manifests; every GGUF/safetensors file passes its
structure check; no model may take a name, reference or alias another model (the embedded default
included) already answers to; only then do blobs move into the store and manifests get written. A
failure at any point leaves nothing behind: no blob, no manifest, no ``.part`` file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from lumbung.errors import IntegrityError, InvalidModelFile, StoreError, UnsafeFile
from lumbung.store import formats
from lumbung.store import manifest as mf
from lumbung.store.catalog import EMBEDDED
from lumbung.store.download import PartFile
from lumbung.store.manifest import Manifest
from lumbung.store.refs import check_relative_path
from lumbung.store.store import ModelStore

INDEX = "lumbung-bundle.json"
FORMAT = "lumbung-bundle"
VERSION = 1
_BLOB = re.compile(r"^blobs/sha256-([0-9a-f]{64})$")
_MANIFEST = re.compile(r"^manifests/[A-Za-z0-9._-]{1,120}\.json$")
MAX_JSON = 16 << 20

OnBytes = Callable[[int], None]


def export(
    store: ModelStore, names: list[str], out: Path, on_bytes: OnBytes = lambda n: None
) -> list[Manifest]:
    """Write the named models to ``out`` (via a temporary file, renamed when complete)."""
    manifests = list({m.reference: m for m in (store.find(n) for n in names)}.values())
    for m in manifests:
        if _is_embedded(m):
            raise StoreError(
                f"{m.name!r} is an embedded model: every lumbung ships it, so it is not exported"
            )
    for m in manifests:
        store.cheap_check(m)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    index = {"format": FORMAT, "version": VERSION, "models": [m.name for m in manifests]}
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, INDEX, json.dumps(index, indent=2).encode())
            for m in manifests:
                _add_bytes(tar, f"manifests/{mf.manifest_key(m.reference)}.json", mf.dump(m))
            done: set[str] = set()
            for m in manifests:
                for f in m.files:
                    if f.sha256 in done:
                        continue
                    done.add(f.sha256)
                    info = tarfile.TarInfo(f"blobs/sha256-{f.sha256}")
                    info.size = f.size
                    info.mode = 0o444
                    with store.blob_path(f.sha256).open("rb") as fh:
                        tar.addfile(info, _Counting(fh, on_bytes))
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return manifests


class _Counting:
    def __init__(self, fh: object, on_bytes: OnBytes) -> None:
        self.fh = fh
        self.on_bytes = on_bytes

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.fh.read(n)  # type: ignore[attr-defined]
        self.on_bytes(len(data))
        return data


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def import_bundle(
    store: ModelStore,
    path: Path,
    on_bytes: OnBytes = lambda n: None,
    *,
    reserved: set[str] | frozenset[str] = frozenset(),
    rename: str | None = None,
) -> list[Manifest]:
    """Check and add every model in the bundle at ``path``; all or nothing. ``reserved``: names the
    server gives other models (the default's aliases, configured models); ``rename``: the name to
    import a one-model bundle under instead of its own (``lumbung import --as``)."""
    if not path.is_file():
        raise StoreError(f"{path}: no such bundle")
    staged: dict[str, Path] = {}
    manifests: list[Manifest] = []
    index: dict[str, object] | None = None
    with store.shared():
        store.ensure()
        if path.stat().st_size > shutil.disk_usage(store.root).free:
            raise StoreError(f"not enough disk space in {store.root} to import {path.name}")
        try:
            with tarfile.open(path, "r|") as tar:  # a stream: members are read once, in order
                for member in tar:
                    name = member.name
                    if not member.isfile():
                        raise UnsafeFile(f"{path.name}: refusing member {name!r}: not a regular file")
                    if name == INDEX:
                        index = _json(tar, member, path)
                    elif _MANIFEST.match(name):
                        manifests.append(_manifest(tar, member, path))
                    elif m := _BLOB.match(name):
                        staged[m.group(1)] = _stage_blob(store, tar, member, m.group(1), on_bytes)
                    else:
                        raise UnsafeFile(
                            f"{path.name}: refusing member {name!r}: not part of a lumbung bundle"
                        )
            if (
                not isinstance(index, dict)
                or index.get("format") != FORMAT
                or index.get("version") != VERSION
            ):
                raise StoreError(f"{path.name}: not a lumbung bundle (no {INDEX} of version {VERSION})")
            if not manifests:
                raise StoreError(f"{path.name}: the bundle holds no models")
            if rename is not None:
                manifests = [_renamed(manifests, rename, path.name)]
            _check_names(store, manifests, reserved, path.name)
            _check(store, manifests, staged, path.name)
            for sha, part in staged.items():
                if any(f.sha256 == sha for m in manifests for f in m.files) and not store.has_blob(sha):
                    store.commit_blob(part, sha)
            saved = []
            for manifest in manifests:
                files = [
                    f.model_copy(update={"mtime_ns": store.blob_stat(f.sha256).mtime_ns})
                    for f in manifest.files
                ]
                saved.append(store.save(manifest.model_copy(update={"files": files})))
            return saved
        except tarfile.TarError as exc:
            raise StoreError(f"{path.name}: not a readable tar bundle: {exc}") from exc
        finally:
            for part in staged.values():
                part.unlink(missing_ok=True)


def _json(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> dict[str, object]:
    if member.size > MAX_JSON:
        raise StoreError(f"{path.name}: {member.name} is too large")
    fh = tar.extractfile(member)
    assert fh is not None
    try:
        data = json.loads(fh.read())
    except ValueError as exc:
        raise StoreError(f"{path.name}: {member.name} is not JSON") from exc
    except RecursionError as exc:  # a manifest is a few levels deep; thousands of brackets are hostile
        raise StoreError(f"{path.name}: {member.name} is nested too deeply to be a manifest") from exc
    if not isinstance(data, dict):
        raise StoreError(f"{path.name}: {member.name} is not a JSON object")
    return data


def _manifest(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> Manifest:
    data = _json(tar, member, path)
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise StoreError(f"{path.name}: {member.name} is not a valid manifest: {exc}") from exc
    for f in manifest.files:
        check_relative_path(f.path, "file name in the bundle")
        formats.require_accepted(f.path)
    return manifest


def _stage_blob(
    store: ModelStore, tar: tarfile.TarFile, member: tarfile.TarInfo, sha: str, on_bytes: OnBytes
) -> Path:
    # One name per process: two imports of one blob at once must not write into the same file.
    part_path = store.partial / f"import-{sha}-{os.getpid()}.part"
    src = tar.extractfile(member)
    assert src is not None
    try:
        with PartFile(part_path) as part:
            part.restart()
            while block := src.read(1 << 20):
                part.write(block)
                on_bytes(len(block))
            part.finish(size=member.size, sha256=sha, git_oid=None, display=member.name)
    except BaseException:  # a truncated bundle, a full disk, a wrong hash: an import never resumes
        part_path.unlink(missing_ok=True)
        raise
    return part_path


def _is_embedded(m: Manifest) -> bool:
    return m.source.kind == "embedded" or any(m.reference == e.reference for e in EMBEDDED)


def _renamed(manifests: list[Manifest], name: str, bundle: str) -> Manifest:
    if len(manifests) != 1:
        raise StoreError(f"{bundle}: --as names one model, and the bundle holds {len(manifests)}")
    if not name.strip() or name != name.strip():
        raise StoreError(f"--as {name!r}: a model name must not be empty or start or end with spaces")
    # Its aliases were names on the machine it came from; here it answers to the name given.
    return manifests[0].model_copy(update={"name": name, "aliases": []})


def _check_names(
    store: ModelStore, manifests: list[Manifest], reserved: set[str] | frozenset[str], bundle: str
) -> None:
    """No model may take a name another answers to: an imported ``smollm2:135m`` would stop the
    embedded default from registering (and the server from starting). A model already stored under
    the same reference may come again only with the same files."""
    stored = {m.reference: m for m in store.models()}
    owner: dict[str, str] = {
        n: f"the embedded model {e.name}" for e in EMBEDDED for n in (e.name, e.reference)
    }
    owner |= {n: "a model the server serves" for n in reserved}
    for m in stored.values():
        owner |= {n: f"the stored model {m.name!r}" for n in m.names()}
    seen: dict[str, str] = {}
    for m in manifests:
        if _is_embedded(m):
            raise StoreError(
                f"{bundle}: model {m.name!r} claims to be an embedded model ({m.reference}), "
                "which ships with lumbung and is never imported"
            )
        same = stored.get(m.reference)
        if same is not None and same.digest != m.digest:
            raise StoreError(
                f"{bundle}: {m.reference} is already stored with other files; "
                f"`lumbung rm {same.name}` first to replace it"
            )
        mine = set(same.names()) if same is not None else set()
        for n in dict.fromkeys(m.names()):
            taken_by = seen.get(n) or (None if n in mine else owner.get(n))
            if taken_by is not None:
                raise StoreError(
                    f"{bundle}: model {m.name!r} wants the name {n!r}, which {taken_by} already answers "
                    "to; nothing was imported (`lumbung import --as NEW_NAME` imports one model under "
                    "another name)"
                )
            seen[n] = f"the bundle's model {m.name!r}"


def _check(store: ModelStore, manifests: list[Manifest], staged: dict[str, Path], bundle: str) -> None:
    """Every file of every manifest is present with its size, and passes its structure check."""
    for m in manifests:
        for f in m.files:
            part = staged.get(f.sha256)
            if part is None and not store.has_blob(f.sha256, f.size):
                raise IntegrityError(
                    f"{bundle}: model {m.name!r} needs {f.path} (sha256 {f.sha256}), "
                    "which the bundle does not hold"
                )
            source = part if part is not None else store.blob_path(f.sha256)
            if source.stat().st_size != f.size:
                raise IntegrityError(
                    f"{bundle}: {f.path} has {source.stat().st_size} bytes, the manifest says {f.size}"
                )
            try:
                formats.validate(source, f.kind, f.path)
            except InvalidModelFile as exc:
                raise InvalidModelFile(f"{bundle}: model {m.name!r}: {exc}") from exc
