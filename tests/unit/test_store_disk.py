"""The store on disk: the cheap check at load, the full re-hash, removal, local files, bundles
(round trip, and tampered bundles refused), and the descriptions the APIs show."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from lumbung.errors import IntegrityError, InvalidModelFile, ModelNotInStore, StoreError, UnsafeFile
from lumbung.store.bundle import export, import_bundle
from lumbung.store.describe import model_details
from lumbung.store.manifest import Manifest
from lumbung.store.pull import add_file
from lumbung.store.refs import parse_reference
from lumbung.store.store import ModelStore
from tests.support.gguf_files import write_gguf


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "home")


def add(store: ModelStore, tmp_path: Path, name: str, **kwargs: object) -> Manifest:
    path = write_gguf(tmp_path / name, **kwargs)  # type: ignore[arg-type]
    return add_file(store, parse_reference(f"file:{path}"))


def damage(path: Path, offset: int) -> None:
    os.chmod(path, 0o644)
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 1]))


def test_local_file_is_copied_checked_and_described(store: ModelStore, tmp_path: Path) -> None:
    m = add(store, tmp_path, "tiny-Q4_K_M.gguf", file_type=15, context_length=8192)
    assert m.source.kind == "file" and m.files[0].checked_against == "local"
    assert store.blob_path(m.files[0].sha256).read_bytes() == (tmp_path / "tiny-Q4_K_M.gguf").read_bytes()
    details = model_details(store.root.parent, m.name)
    assert details is not None
    assert details["details"] == {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "384",
        "quantization_level": "Q4_K_M",
    }
    assert details["model_info"]["llama.context_length"] == 8192
    assert (
        details["digest"]
        == m.files[0].sha256
        == hashlib.sha256((tmp_path / "tiny-Q4_K_M.gguf").read_bytes()).hexdigest()
    )
    assert details["size"] == m.size
    assert model_details(store.root.parent, "nope") is None


def test_a_broken_local_file_is_refused_and_nothing_stored(store: ModelStore, tmp_path: Path) -> None:
    src = write_gguf(tmp_path / "x.gguf")
    src.write_bytes(src.read_bytes()[:-1])
    with pytest.raises(InvalidModelFile, match="truncated"):
        add_file(store, parse_reference(f"file:{src}"))
    pickle = tmp_path / "model.pt"
    pickle.write_bytes(b"\x80\x04pickle")
    with pytest.raises(UnsafeFile, match="pickle-based weights can run code"):
        add_file(store, parse_reference(f"file:{pickle}"))
    assert store.models() == [] and not list(store.blobs.iterdir())


def test_cheap_check_refuses_a_changed_file_and_verify_says_which(store: ModelStore, tmp_path: Path) -> None:
    m = add(store, tmp_path, "a.gguf")
    blob = store.blob_path(m.files[0].sha256)
    store.load_path(m.name)
    damage(blob, 100)
    with pytest.raises(IntegrityError, match=r"file a.gguf was modified after it was stored.*lumbung verify"):
        store.load_path(m.name)
    [problem] = store.verify(m)
    assert problem.startswith("a.gguf: sha256 ") and m.files[0].sha256 in problem
    with pytest.raises(IntegrityError):  # verify does not bless damaged bytes
        store.load_path(m.name)


def test_a_touched_but_intact_file_is_cleared_by_verify(store: ModelStore, tmp_path: Path) -> None:
    m = add(store, tmp_path, "a.gguf")
    blob = store.blob_path(m.files[0].sha256)
    os.utime(blob, (1, 1))
    with pytest.raises(IntegrityError, match="modified"):
        store.load_path(m.name)
    assert store.verify(m) == []
    assert store.load_path(m.name).exists()


def test_a_missing_or_shortened_blob_is_named(store: ModelStore, tmp_path: Path) -> None:
    m = add(store, tmp_path, "a.gguf")
    blob = store.blob_path(m.files[0].sha256)
    os.chmod(blob, 0o644)
    blob.write_bytes(blob.read_bytes()[:-5])
    with pytest.raises(IntegrityError, match=f"has {m.size - 5} bytes, the manifest says {m.size}"):
        store.load_path(m.name)
    blob.unlink()
    with pytest.raises(IntegrityError, match="is missing from the store"):
        store.load_path(m.name)
    assert store.verify(m)[0].startswith("a.gguf: missing")


def test_remove_keeps_blobs_other_models_use(store: ModelStore, tmp_path: Path) -> None:
    a = add(store, tmp_path, "a.gguf", seed=1)
    (tmp_path / "b").mkdir()
    b = add(store, tmp_path / "b", "a.gguf", seed=1)  # same bytes, another reference
    c = add(store, tmp_path, "c.gguf", seed=2)
    assert a.files[0].sha256 == b.files[0].sha256
    removed, freed = store.remove(a.name)
    assert removed.reference == a.reference and freed == 0
    assert store.has_blob(a.files[0].sha256)
    _, freed = store.remove(b.reference)
    assert freed == b.size and not store.has_blob(b.files[0].sha256)
    assert [m.name for m in store.models()] == [c.name]
    with pytest.raises(ModelNotInStore):
        store.remove(a.name)


def test_export_import_round_trip(store: ModelStore, tmp_path: Path) -> None:
    a = add(store, tmp_path, "a.gguf", seed=1)
    b = add(store, tmp_path, "b.gguf", seed=2)
    bundle = tmp_path / "models.tar"
    export(store, [a.name, b.reference, a.name], bundle)
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
    assert names[0] == "lumbung-bundle.json" and len([n for n in names if n.startswith("blobs/")]) == 2
    other = ModelStore(tmp_path / "air-gapped")
    imported = import_bundle(other, bundle)
    assert {m.reference for m in imported} == {a.reference, b.reference}
    for m in imported:
        assert other.verify(m) == [] and other.load_path(m.name).exists()
        assert m.source == store.find(m.name).source  # provenance travels with the model
    assert not list(other.partial.glob("*.part"))


def _bundle(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _members(bundle: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    out = []
    with tarfile.open(bundle) as tar:
        for info in tar.getmembers():
            fh = tar.extractfile(info)
            assert fh is not None
            out.append((info, fh.read()))
    return out


@pytest.fixture
def good_bundle(store: ModelStore, tmp_path: Path) -> Path:
    m = add(store, tmp_path, "a.gguf")
    return export(store, [m.name], tmp_path / "good.tar") and tmp_path / "good.tar"


def test_a_bundle_with_a_flipped_byte_is_refused(good_bundle: Path, tmp_path: Path) -> None:
    members = _members(good_bundle)
    info, data = members[-1]
    members[-1] = (info, data[:50] + bytes([data[50] ^ 1]) + data[51:])
    bad = _bundle(tmp_path / "bad.tar", members)
    target = ModelStore(tmp_path / "t")
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        import_bundle(target, bad)
    assert (
        target.models() == [] and not list(target.blobs.iterdir()) and not list(target.partial.glob("*.part"))
    )


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("../../evil", tarfile.REGTYPE),
        ("/etc/evil", tarfile.REGTYPE),
        ("blobs/sha256-x", tarfile.REGTYPE),
        ("manifests/link.json", tarfile.SYMTYPE),
        ("blobs", tarfile.DIRTYPE),
    ],
)
def test_a_bundle_with_a_hostile_member_is_refused(
    good_bundle: Path, tmp_path: Path, name: str, kind: bytes
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    if kind == tarfile.SYMTYPE:
        info.linkname = "/etc/passwd"
    data = b"x" if kind == tarfile.REGTYPE else None
    bad = _bundle(tmp_path / "bad.tar", [*_members(good_bundle), (info, data)])  # type: ignore[list-item]
    target = ModelStore(tmp_path / "t")
    with pytest.raises(UnsafeFile, match="refusing member"):
        import_bundle(target, bad)
    assert target.models() == [] and not (tmp_path / "evil").exists()


def test_a_bundle_missing_a_blob_or_with_a_hostile_manifest_is_refused(
    good_bundle: Path, tmp_path: Path
) -> None:
    members = _members(good_bundle)
    target = ModelStore(tmp_path / "t")
    with pytest.raises(IntegrityError, match="which the bundle does not hold"):
        import_bundle(target, _bundle(tmp_path / "noblob.tar", members[:-1]))
    info, data = members[1]
    manifest = json.loads(data)
    manifest["files"][0]["path"] = "../../../escape.gguf"
    hostile = [members[0], (info, json.dumps(manifest).encode()), *members[2:]]
    with pytest.raises(UnsafeFile, match="refusing file name in the bundle"):
        import_bundle(target, _bundle(tmp_path / "hostile.tar", hostile))
    with pytest.raises(StoreError, match="not a lumbung bundle"):
        import_bundle(target, _bundle(tmp_path / "noindex.tar", members[1:]))
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(StoreError, match="not a readable tar bundle"):
        import_bundle(target, tmp_path / "junk.tar")
    assert target.models() == []


def test_a_bundle_holding_a_malformed_gguf_is_refused(store: ModelStore, tmp_path: Path) -> None:
    m = add(store, tmp_path, "a.gguf")
    blob = store.blob_path(m.files[0].sha256)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"GGUF" + b"\0" * (m.size - 4))  # same size, so export's cheap check passes...
    os.utime(blob, ns=(m.files[0].mtime_ns, m.files[0].mtime_ns))
    bundle = export(store, [m.name], tmp_path / "b.tar") and tmp_path / "b.tar"
    members = _members(bundle)
    import hashlib

    info, data = members[-1]
    sha = hashlib.sha256(data).hexdigest()
    manifest = json.loads(members[1][1])
    manifest["files"][0]["sha256"] = sha  # ...and a forger fixes up the hashes
    info.name = f"blobs/sha256-{sha}"
    forged = [members[0], (members[1][0], json.dumps(manifest).encode()), (info, data)]
    with pytest.raises(InvalidModelFile, match="not a valid GGUF"):
        import_bundle(ModelStore(tmp_path / "t"), _bundle(tmp_path / "forged.tar", forged))
