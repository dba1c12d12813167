"""A corpus of malicious and broken bundles: each is refused with one clear error naming what is
wrong, and leaves nothing behind (no manifest, no blob, no view, no ``.part`` file, nothing outside
the store). Built from a good bundle of small real GGUF files, then damaged on purpose."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from lumbung.cli import main
from lumbung.errors import ModelNotInStore, StoreError
from lumbung.store.bundle import INDEX, export, import_bundle
from lumbung.store.catalog import EMBEDDED, EMBEDDED_DEFAULT
from lumbung.store.manifest import Manifest
from lumbung.store.pull import add_file
from lumbung.store.refs import parse_reference
from lumbung.store.store import ModelStore
from tests.support.gguf_files import write_gguf

Member = tuple[tarfile.TarInfo, bytes | None]


def add(store: ModelStore, tmp_path: Path, name: str, seed: int = 0) -> Manifest:
    return add_file(store, parse_reference(f"file:{write_gguf(tmp_path / name, seed=seed)}"))


def members_of(bundle: Path) -> list[Member]:
    out: list[Member] = []
    with tarfile.open(bundle) as tar:
        for info in tar.getmembers():
            fh = tar.extractfile(info)
            out.append((info, fh.read() if fh is not None else None))
    return out


def write_bundle(path: Path, members: list[Member]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def with_manifest(members: list[Member], change: Callable[[dict[str, object]], None]) -> list[Member]:
    out = []
    for info, data in members:
        if info.name.startswith("manifests/") and data is not None:
            manifest = json.loads(data)
            change(manifest)
            data = json.dumps(manifest).encode()
        out.append((info, data))
    return out


@pytest.fixture
def source(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "source")


@pytest.fixture
def good(source: ModelStore, tmp_path: Path) -> list[Member]:
    m = add(source, tmp_path, "tiny.gguf")
    export(source, [m.name], tmp_path / "good.tar")
    return members_of(tmp_path / "good.tar")


def refused(target: ModelStore, bundle: Path, match: str, **kwargs: object) -> None:
    """The import fails with a store error (one line at the CLI, never a traceback) and the store is
    as it was: nothing stored, nothing half-written."""
    before = files_in(target)
    with pytest.raises(StoreError, match=match):
        import_bundle(target, bundle, **kwargs)  # type: ignore[arg-type]
    assert files_in(target) == before


def files_in(store: ModelStore) -> set[Path]:
    """Every file and link in the store but its lock file (empty directories are no harm)."""
    if not store.root.exists():
        return set()
    return {p for p in store.root.rglob("*") if (p.is_file() or p.is_symlink()) and p.name != ".lock"}


def test_a_truncated_blob_leaves_no_part_file(good: list[Member], tmp_path: Path) -> None:
    whole = write_bundle(tmp_path / "whole.tar", good).read_bytes()
    blob_at = whole.index(b"GGUF")  # the blob's bytes: cut the bundle in the middle of them
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole[: blob_at + 100])
    target = ModelStore(tmp_path / "t")
    refused(target, cut, "not a readable tar bundle")
    assert target.models() == [] and not list(target.blobs.iterdir())


@pytest.mark.parametrize("member", ["index", "manifest"])
def test_deeply_nested_json_is_a_clear_error(good: list[Member], tmp_path: Path, member: str) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    target = INDEX if member == "index" else next(i.name for i, _ in good if i.name.startswith("manifests/"))
    members = [(info, deep if info.name == target else data) for info, data in good]
    refused(ModelStore(tmp_path / "t"), write_bundle(tmp_path / "deep.tar", members), "nested too deeply")


@pytest.mark.parametrize(
    ("name", "kind", "linkname"),
    [
        ("../../evil", tarfile.REGTYPE, ""),
        ("/tmp/evil", tarfile.REGTYPE, ""),
        ("manifests/../../evil.json", tarfile.REGTYPE, ""),
        ("blobs/../../evil", tarfile.REGTYPE, ""),
        ("manifests/link.json", tarfile.SYMTYPE, "/etc/passwd"),
        ("blobs/sha256-" + "0" * 64, tarfile.SYMTYPE, "../../../../etc/passwd"),
        ("manifests/hard.json", tarfile.LNKTYPE, INDEX),
        ("blobs", tarfile.DIRTYPE, ""),
        ("dev.json", tarfile.CHRTYPE, ""),
    ],
)
def test_hostile_member_names_and_links_are_refused(
    good: list[Member], tmp_path: Path, name: str, kind: bytes, linkname: str
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    bad = write_bundle(tmp_path / "bad.tar", [(info, b"x" if kind == tarfile.REGTYPE else None), *good])
    refused(ModelStore(tmp_path / "t"), bad, "refusing member")
    assert not (tmp_path / "evil").exists() and not (tmp_path / "evil.json").exists()


def test_a_manifest_file_path_that_leaves_the_view_is_refused(good: list[Member], tmp_path: Path) -> None:
    def escape(m: dict[str, object]) -> None:
        m["files"][0]["path"] = "../../../escape.gguf"  # type: ignore[index]

    refused(
        ModelStore(tmp_path / "t"), write_bundle(tmp_path / "b.tar", with_manifest(good, escape)), "refusing"
    )


def test_a_blob_whose_bytes_do_not_match_its_sha256_is_refused(good: list[Member], tmp_path: Path) -> None:
    members = list(good)
    info, data = members[-1]
    assert data is not None and info.name.startswith("blobs/")
    members[-1] = (info, data[:-1] + bytes([data[-1] ^ 1]))
    refused(ModelStore(tmp_path / "t"), write_bundle(tmp_path / "b.tar", members), "sha256 mismatch")


def test_a_manifest_listing_another_sha256_is_refused(good: list[Member], tmp_path: Path) -> None:
    def other(m: dict[str, object]) -> None:
        m["files"][0]["sha256"] = hashlib.sha256(b"something else").hexdigest()  # type: ignore[index]

    bundle = write_bundle(tmp_path / "b.tar", with_manifest(good, other))
    refused(ModelStore(tmp_path / "t"), bundle, "which the bundle does not hold")


def rename(name: str, aliases: list[str] | None = None) -> Callable[[dict[str, object]], None]:
    def change(m: dict[str, object]) -> None:
        m["name"] = name
        if aliases is not None:
            m["aliases"] = aliases

    return change


def test_a_model_claiming_the_embedded_defaults_name_is_refused_and_can_come_in_under_another(
    good: list[Member], tmp_path: Path
) -> None:
    # It used to import, and then the embedded default could not register: /health said 503.
    for entry in EMBEDDED:  # the default and Gemma beside it
        bundle = write_bundle(tmp_path / "b.tar", with_manifest(good, rename(entry.name)))
        target = ModelStore(tmp_path / "t")
        refused(target, bundle, f"'{entry.name}', which the embedded model {entry.name} already answers to")
        with pytest.raises(ModelNotInStore):
            target.find(entry.name)
    done = import_bundle(target, bundle, rename="my-tiny")
    assert [m.name for m in done] == ["my-tiny"] and target.find("my-tiny").files == done[0].files


def test_a_model_claiming_the_embedded_reference_is_refused(good: list[Member], tmp_path: Path) -> None:
    def embedded(m: dict[str, object]) -> None:
        m["reference"] = EMBEDDED_DEFAULT.reference

    refused(
        ModelStore(tmp_path / "t"),
        write_bundle(tmp_path / "b.tar", with_manifest(good, embedded)),
        "claims to be an embedded model",
    )


def test_names_taken_by_stored_or_served_models_are_refused(
    good: list[Member], source: ModelStore, tmp_path: Path
) -> None:
    target = ModelStore(tmp_path / "t")
    there = add(target, tmp_path, "there.gguf", seed=7)
    for change, taken in [
        (rename(there.name), there.name),  # its name
        (rename("fresh", [there.reference]), there.reference),  # an alias that is another's reference
        (rename("default"), "default"),  # reserved by the server (the default model's alias)
    ]:
        bundle = write_bundle(tmp_path / "b.tar", with_manifest(good, change))
        refused(target, bundle, f"wants the name '{taken}'", reserved={"default", EMBEDDED_DEFAULT.name})
    assert [m.reference for m in target.models()] == [there.reference]


def test_two_models_of_one_bundle_wanting_one_name_are_refused(source: ModelStore, tmp_path: Path) -> None:
    a, b = add(source, tmp_path, "a.gguf", seed=1), add(source, tmp_path, "b.gguf", seed=2)
    export(source, [a.name, b.name], tmp_path / "two.tar")
    members = with_manifest(members_of(tmp_path / "two.tar"), rename("twin"))
    refused(ModelStore(tmp_path / "t"), write_bundle(tmp_path / "b.tar", members), "wants the name 'twin'")
    with pytest.raises(StoreError, match="--as names one model"):
        import_bundle(ModelStore(tmp_path / "t"), tmp_path / "two.tar", rename="x")


def test_the_same_model_may_come_again_but_not_with_other_files(
    good: list[Member], source: ModelStore, tmp_path: Path
) -> None:
    target = ModelStore(tmp_path / "t")
    bundle = write_bundle(tmp_path / "b.tar", good)
    first = import_bundle(target, bundle)
    assert [m.name for m in import_bundle(target, bundle)] == [first[0].name]  # idempotent
    other = add(source, tmp_path, "other.gguf", seed=5)
    export(source, [other.name], tmp_path / "other.tar")

    def same_reference(m: dict[str, object]) -> None:
        m["reference"], m["name"] = first[0].reference, first[0].name

    forged = write_bundle(
        tmp_path / "f.tar", with_manifest(members_of(tmp_path / "other.tar"), same_reference)
    )
    refused(target, forged, "already stored with other files")
    assert target.find(first[0].name).files == first[0].files


def test_cli_refuses_the_default_models_names_in_one_line(good: list[Member], tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"LUMBUNG_HOME": str(home)}
    for name in (*(e.name for e in EMBEDDED), "default"):
        bundle = write_bundle(tmp_path / "b.tar", with_manifest(good, rename(name)))
        result = CliRunner().invoke(main, ["import", str(bundle)], env=env)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert f"wants the name '{name}'" in result.output and "--as NEW_NAME" in result.output
    result = CliRunner().invoke(main, ["import", str(bundle), "--as", "tiny"], env=env)
    assert result.exit_code == 0 and result.output.strip() == "imported tiny", result.output
    assert [m.name for m in ModelStore(home).models()] == ["tiny"]


def test_cli_refuses_the_names_of_configured_models_and_routes(good: list[Member], tmp_path: Path) -> None:
    config = tmp_path / "lumbung.yaml"
    config.write_text(
        "providers:\n"
        "  - {name: vllm, kind: openai, base_url: 'http://10.0.0.5:8000/v1', jurisdiction: ID}\n"
        "routes:\n"
        "  - {name: assistant, aliases: [helper], tiers: [[vllm/qwen]]}\n"
        f"models:\n  - {{id: mine, aliases: [my-alias], path: '{write_gguf(tmp_path / 'mine.gguf')}'}}\n"
    )
    env = {"LUMBUNG_HOME": str(tmp_path / "home")}
    for name in ("assistant", "helper", "mine", "my-alias"):
        bundle = write_bundle(tmp_path / "b.tar", with_manifest(good, rename(name)))
        result = CliRunner().invoke(main, ["import", str(bundle), "--config", str(config)], env=env)
        assert result.exit_code == 1 and f"wants the name '{name}'" in result.output, result.output
    assert ModelStore(tmp_path / "home").models() == []


def test_the_embedded_default_is_not_exported(tmp_path: Path) -> None:
    from lumbung.store.manifest import Source, StoredFile

    store = ModelStore(tmp_path / "s")
    path = write_gguf(tmp_path / "e.gguf")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    store.ensure()
    store.blob_path(sha).write_bytes(path.read_bytes())
    st = store.blob_stat(sha)
    store.save(
        Manifest(
            name=EMBEDDED_DEFAULT.name,
            reference=EMBEDDED_DEFAULT.reference,
            source=Source(kind="embedded"),
            format="gguf",
            files=[
                StoredFile(
                    path="e.gguf",
                    kind="gguf",
                    size=st.size,
                    sha256=sha,
                    mtime_ns=st.mtime_ns,
                    checked_against="package-sha256",
                )
            ],
        )
    )
    with pytest.raises(StoreError, match="every lumbung ships it"):
        export(store, [EMBEDDED_DEFAULT.name], tmp_path / "e.tar")
    assert not (tmp_path / "e.tar").exists()
