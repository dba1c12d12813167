"""Pulling through the real hub libraries from a fake hub on 127.0.0.1 speaking the Hugging Face and
ModelScope protocols, with small real GGUFs: manifests, pinned revisions, resumes after cut
connections, corrupted and malformed bytes, hostile names, offline mode behind a socket guard."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lumbung.errors import HubError, IntegrityError, InvalidModelFile, OfflineError, StoreError, UnsafeFile
from lumbung.store.pull import Progress, PullOptions, pull
from lumbung.store.store import ModelStore
from tests.support.fake_hub import FakeFile, FakeHub
from tests.support.gguf_files import write_gguf
from tests.support.offline import no_network

# huggingface_hub keeps a small cache (its agent registry) under HF_HOME: never the user's.
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="lumbung-hf-home-"))

REPO = "acme/tiny-GGUF"


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as h:
        yield h


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "home")


@pytest.fixture
def options(hub: FakeHub) -> PullOptions:
    return PullOptions(hf_endpoint=hub.url, modelscope_endpoint=hub.url)


def gguf_file(tmp_path: Path, name: str, seed: int = 0, **kwargs: object) -> FakeFile:
    path = write_gguf(tmp_path / f"src-{seed}-{name.replace('/', '_')}", seed=seed, **kwargs)  # type: ignore[arg-type]
    return FakeFile(name, data=path.read_bytes())


def downloads(hub: FakeHub) -> list[str]:
    return [s.path for s in hub.seen("GET") if "/fake-cdn/" in s.path or "/repo?" in s.path]


def test_hf_pull_records_commit_licence_sizes_hashes_and_facts(
    hub: FakeHub, store: ModelStore, options: PullOptions, tmp_path: Path
) -> None:
    f = gguf_file(tmp_path, "tiny-Q4_K_M.gguf", file_type=15, chat_template="{{ m }}")
    commit = hub.commit(REPO, [f, FakeFile("README.md", data=b"# tiny\n")], license="mit")
    events: list[Progress] = []
    m = pull(store, f"hf:{REPO}:q4_k_m", options, events.append)
    assert m.name == m.reference == "hf:acme/tiny-GGUF:q4_k_m"
    assert (m.source.kind, m.source.repo, m.source.revision, m.source.commit) == ("hf", REPO, "main", commit)
    assert m.license == "mit" and m.format == "gguf"
    [stored] = m.files
    assert (stored.path, stored.size, stored.sha256, stored.checked_against) == (
        "tiny-Q4_K_M.gguf",
        f.size,
        f.sha256,
        "hub-sha256",
    )
    assert store.blob_path(f.sha256).read_bytes() == f.data
    assert m.gguf is not None and (m.gguf.architecture, m.gguf.quantization, m.gguf.chat_template) == (
        "llama",
        "Q4_K_M",
        True,
    )
    assert [e.status for e in events if e.file is None] == [
        "pulling manifest",
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    assert events[-2].status == "writing manifest"
    assert any(e.completed == e.total == f.size for e in events if e.file)
    # The file was fetched at the resolved commit, not at the moving branch.
    assert hub.seen("GET", f"/resolve/{commit}/tiny-Q4_K_M.gguf")
    assert store.find("hf:acme/tiny-GGUF:Q4_K_M").reference == m.reference
    assert store.load_path(m.name).name == "tiny-Q4_K_M.gguf"


def test_small_files_are_checked_against_the_git_blob_id(
    hub: FakeHub, store: ModelStore, options: PullOptions, tmp_path: Path
) -> None:
    weights = FakeFile("model.safetensors", data=_safetensors(tmp_path))
    hub.commit(
        REPO, [weights, FakeFile("config.json", data=b'{"a": 1}'), FakeFile("model.bin", data=b"pickle")]
    )
    m = pull(store, f"hf:{REPO}", options)
    assert m.format == "safetensors"
    assert {(f.path, f.checked_against) for f in m.files} == {
        ("model.safetensors", "hub-sha256"),
        ("config.json", "git-sha1"),
    }


def test_modelscope_pull_resolves_the_newest_commit(
    hub: FakeHub, store: ModelStore, options: PullOptions, tmp_path: Path
) -> None:
    old = gguf_file(tmp_path, "m-Q8_0.gguf", seed=1)
    first = hub.commit(REPO, [old], license="apache-2.0")
    second = hub.commit(REPO, [old, FakeFile("README.md", data=b"v2")])
    m = pull(store, f"ms:{REPO}", options)
    assert (m.source.kind, m.source.revision, m.source.commit, m.license) == (
        "ms",
        "master",
        second,
        "apache-2.0",
    )
    assert first != second and m.files[0].sha256 == old.sha256
    assert hub.seen("GET", "/api/v1/models/acme/tiny-GGUF/repo/files?Revision=master")


def test_pinned_revision_gets_that_revision(
    hub: FakeHub, store: ModelStore, options: PullOptions, tmp_path: Path
) -> None:
    v1 = gguf_file(tmp_path, "m-Q4_K_M.gguf", seed=1)
    c1 = hub.commit(REPO, [v1], tags=("v1.0",))
    v2 = gguf_file(tmp_path, "m-Q4_K_M.gguf", seed=2)
    c2 = hub.commit(REPO, [v2])
    latest = pull(store, f"hf:{REPO}", options)
    tagged = pull(store, f"hf:{REPO}@v1.0", options)
    by_commit = pull(store, f"ms:{REPO}@{c1}", options)
    assert (latest.source.commit, latest.files[0].sha256) == (c2, v2.sha256)
    assert (tagged.source.commit, tagged.files[0].sha256) == (c1, v1.sha256)
    assert tagged.source.revision == "v1.0" and tagged.name == f"hf:{REPO}@v1.0"
    assert by_commit.files[0].sha256 == v1.sha256
    assert len(store.models()) == 3
    with pytest.raises(HubError, match="revision not found"):
        pull(store, f"hf:{REPO}@v9", options)


def test_resume_after_the_connection_is_cut(
    hub: FakeHub, store: ModelStore, options: PullOptions, tmp_path: Path
) -> None:
    # 24 MiB: huggingface_hub writes in 10 MiB chunks, so a resume point exists after the first drop.
    f = gguf_file(tmp_path, "m-Q4_K_M.gguf", shape=(256, 8192))
    hub.commit(REPO, [f])
    hub.faults.cut[f.path] = [12_000_000, 3_000_000]  # two drops; each attempt resumes where it stopped
    pull(store, f"hf:{REPO}", options)
    ranges = [s.range for s in hub.seen("GET", "/fake-cdn/")]
    assert ranges[0] is None and len(ranges) == 3
    assert all(r and r.startswith("bytes=") and int(r[6:-1]) > 0 for r in ranges[1:])
    assert store.blob_path(f.sha256 or "").read_bytes() == f.data


def test_modelscope_download_resumes_after_a_cut(
    hub: FakeHub, store: ModelStore, options: PullOptions, tmp_path: Path
) -> None:
    f = gguf_file(tmp_path, "m-Q4_K_M.gguf", shape=(256, 8192))
    hub.commit(REPO, [f])
    hub.faults.cut[f.path] = [12_000_000]
    pull(store, f"ms:{REPO}", options)
    ranges = [s.range for s in hub.seen("GET", "/repo?Revision")]
    assert ranges == [None, f"bytes={11 << 20}-"]  # whole 1 MiB chunks were kept
    assert store.blob_path(f.sha256 or "").read_bytes() == f.data


def test_a_corrupted_byte_is_detected_and_nothing_is_stored(
    hub: FakeHub, store: ModelStore, options: PullOptions, tmp_path: Path
) -> None:
    f = gguf_file(tmp_path, "m-Q4_K_M.gguf")
    hub.commit(REPO, [f])
    hub.faults.corrupt.add(f.path)
    for ref in (f"hf:{REPO}", f"ms:{REPO}"):
        with pytest.raises(IntegrityError, match=f"sha256 mismatch: the hub publishes {f.sha256}"):
            pull(store, ref, options)
    assert store.models() == []
    assert not list(store.blobs.iterdir()) and not list(store.partial.glob("*.part"))
    hub.faults.corrupt.clear()
    assert pull(store, f"hf:{REPO}", options).files[0].sha256 == f.sha256


def test_malformed_and_truncated_ggufs_from_the_hub_are_refused(
    hub: FakeHub, store: ModelStore, options: PullOptions, tmp_path: Path
) -> None:
    good = gguf_file(tmp_path, "m-Q4_K_M.gguf")
    assert good.data is not None
    hub.commit("acme/truncated", [FakeFile("m-Q4_K_M.gguf", data=good.data[:-100])])
    hub.commit("acme/garbage", [FakeFile("m-Q4_K_M.gguf", data=b"GGUF" + b"\xff" * 200)])
    with pytest.raises(InvalidModelFile, match=r"m-Q4_K_M.gguf: not a valid GGUF file: truncated"):
        pull(store, "hf:acme/truncated", options)
    with pytest.raises(InvalidModelFile, match="unsupported GGUF version"):
        pull(store, "ms:acme/garbage", options)
    assert store.models() == [] and not list(store.blobs.iterdir())


def test_a_hostile_file_name_is_refused_before_any_download(
    hub: FakeHub, store: ModelStore, options: PullOptions, tmp_path: Path
) -> None:
    evil = gguf_file(tmp_path, "../../../escape-Q4_K_M.gguf")
    hub.commit("acme/evil", [evil])
    with pytest.raises(UnsafeFile, match=r"refusing hub file name '../../../escape-Q4_K_M.gguf'"):
        pull(store, "hf:acme/evil", options)
    with pytest.raises(UnsafeFile):
        pull(store, "ms:acme/evil", options)
    assert downloads(hub) == []
    assert not (tmp_path / "escape-Q4_K_M.gguf").exists()


def test_pickle_weights_are_never_downloaded(hub: FakeHub, store: ModelStore, options: PullOptions) -> None:
    hub.commit(
        "acme/torch",
        [FakeFile("pytorch_model.bin", data=b"\x80\x04pickle"), FakeFile("config.json", data=b"{}")],
    )
    with pytest.raises(UnsafeFile, match="only pickle-based weights"):
        pull(store, "hf:acme/torch", options)
    assert downloads(hub) == []


def test_unknown_repository_is_a_clear_hub_error(store: ModelStore, options: PullOptions) -> None:
    with pytest.raises(HubError, match="repository not found"):
        pull(store, "hf:nobody/nothing", options)
    with pytest.raises(HubError, match="not found"):
        pull(store, "ms:nobody/nothing", options)


def test_stored_blobs_are_not_downloaded_again(
    hub: FakeHub, store: ModelStore, options: PullOptions, tmp_path: Path
) -> None:
    hub.commit(REPO, [gguf_file(tmp_path, "m-Q4_K_M.gguf")])
    pull(store, f"hf:{REPO}", options)
    before = len(downloads(hub))
    pull(store, f"hf:{REPO}:q4_k_m", options)
    pull(store, f"ms:{REPO}", options)
    assert len(downloads(hub)) == before == 1


def test_offline_makes_no_network_call_at_all(
    hub: FakeHub, store: ModelStore, options: PullOptions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.commit(REPO, [gguf_file(tmp_path, "m-Q4_K_M.gguf")])
    pulled = pull(store, f"hf:{REPO}", options)
    hub.requests.clear()
    offline = PullOptions(offline=True, hf_endpoint=hub.url, modelscope_endpoint=hub.url)
    with no_network(monkeypatch) as attempts:
        assert pull(store, f"hf:{REPO}", offline).reference == pulled.reference
        with pytest.raises(OfflineError, match="not in the store and lumbung is offline"):
            pull(store, "hf:acme/other", offline)
        with pytest.raises(OfflineError):
            pull(store, "ms:acme/other@v1:q8_0", offline)
        assert store.verify(pulled) == [] and store.load_path(pulled.name).exists()
    assert attempts == [] and hub.requests == []
    # The guard is real: online pulls inside it fail at the socket (new hosts: no pooled connection).
    elsewhere = PullOptions(hf_endpoint="http://127.0.0.2:9", modelscope_endpoint="http://127.0.0.3:9")
    with no_network(monkeypatch) as attempts:
        with pytest.raises(HubError):
            pull(store, "hf:acme/other", elsewhere)
        with pytest.raises(HubError):
            pull(store, "ms:acme/other", elsewhere)
    assert any("127.0.0.2" in a for a in attempts) and any("127.0.0.3" in a for a in attempts)


def test_split_gguf_is_stored_whole_with_its_part_names(
    hub: FakeHub, store: ModelStore, options: PullOptions, tmp_path: Path
) -> None:
    parts = [
        gguf_file(tmp_path, f"big-Q4_K_M-0000{i + 1}-of-00002.gguf", seed=i, split=(i, 2)) for i in range(2)
    ]
    hub.commit(REPO, [*parts, gguf_file(tmp_path, "big-Q8_0.gguf", seed=9)])
    m = pull(store, f"hf:{REPO}:Q4_K_M", options)
    assert [f.path for f in m.files] == [p.path for p in parts]
    assert m.gguf is not None and m.gguf.split_count == 2
    first = store.load_path(m.name)
    assert first.name == parts[0].path
    assert (first.parent / parts[1].path).read_bytes() == parts[1].data  # llama.cpp finds part 2 by name


def test_two_parts_that_disagree_are_refused(
    hub: FakeHub, store: ModelStore, options: PullOptions, tmp_path: Path
) -> None:
    parts = [
        gguf_file(tmp_path, f"big-Q4_K_M-0000{i + 1}-of-00002.gguf", seed=i, split=(0, 2)) for i in range(2)
    ]
    hub.commit(REPO, parts)
    with pytest.raises(InvalidModelFile, match="part 0 of 2, but it is part 1 of 2"):
        pull(store, f"hf:{REPO}", options)
    assert store.models() == []


def test_a_full_disk_mid_pull_leaves_no_blob_and_the_pull_resumes(
    hub: FakeHub, options: PullOptions, tmp_path: Path
) -> None:
    """A real filesystem filling up (a small tmpfs; needs root to mount) while the file arrives."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0 or os.system(f"mount -t tmpfs -o size=12m tmpfs {mount} 2>/dev/null") != 0:
        pytest.skip(
            "cannot mount a tmpfs here (not root); tests/e2e/test_store_cli.py covers a full disk "
            "with RLIMIT_FSIZE instead"
        )
    try:
        store = ModelStore(mount / "home")
        f = gguf_file(tmp_path, "m-Q4_K_M.gguf", shape=(256, 6144), tensors=1)  # 6 MiB
        hub.commit(REPO, [f])
        filler = mount / "filler"

        def fill_the_disk() -> None:
            """Something else fills the disk once the first MiB of the model is on it."""
            deadline = time.monotonic() + 10
            while (
                time.monotonic() < deadline
                and sum(p.stat().st_size for p in store.partial.glob("*.part")) < 1 << 20
            ):
                time.sleep(0.01)
            os.system(f"dd if=/dev/zero of={filler} bs=1M 2>/dev/null")

        hub.faults.after[f.path] = (2 << 20, fill_the_disk)
        with pytest.raises(StoreError, match=r"No space left on device.*pull again to resume"):
            pull(store, f"ms:{REPO}", options)  # ModelScope's client hands over 1 MiB at a time
        kept = next(store.partial.glob("*.part")).stat().st_size
        assert 1 << 20 <= kept < f.size and store.models() == [] and not list(store.blobs.iterdir())
        filler.unlink()
        hub.requests.clear()
        pull(store, f"ms:{REPO}", options)
        [resumed] = [s.range for s in hub.seen("GET", "/repo?Revision")]
        assert resumed == f"bytes={kept}-"
        assert store.blob_path(f.sha256 or "").read_bytes() == f.data
    finally:
        if os.system(f"umount {mount} 2>/dev/null") != 0:
            os.system(f"umount -l {mount}")


def _safetensors(tmp_path: Path) -> bytes:
    import numpy as np
    from safetensors.numpy import save_file

    path = tmp_path / "w.safetensors"
    save_file({"w": np.ones((8, 8), dtype=np.float32)}, str(path))
    return path.read_bytes()
