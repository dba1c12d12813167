"""LoRA adapters served by a real `lumbung serve`: declared per model in the config (by path, or pulled
into the store with `lumbung pull file:`), listed in /v1/models and /api/tags, answered through the
OpenAI and Ollama APIs, shown by `lumbung ps`; a stored adapter whose bytes no longer match its
manifest's sha256 (its size and mtime put back, so only a hash can tell) is refused, and so is a path
adapter whose file does not match the sha256 the config pins. The base is Gemma 3 270M.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from lumbung.store.embedded import GEMMA, embedded_model_path
from lumbung.store.store import ModelStore
from tests.support.lora import write_lora
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e
BASE = "gemma3:270m"
MSG = [{"role": "user", "content": "The capital of France is"}]


def pull(home: Path, path: Path) -> str:
    env = {**os.environ, "LUMBUNG_HOME": str(home)}
    env.pop("LUMBUNG_CONFIG", None)
    out = subprocess.run(
        [sys.executable, "-m", "lumbung", "pull", f"file:{path}"], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return f"file:{path}"


def tamper(home: Path, reference: str) -> None:
    """Change one byte of the stored blob, keeping its size and mtime (the cheap check passes)."""
    manifest = ModelStore(home).find(reference)
    blob = ModelStore(home).blob_path(manifest.files[0].sha256)
    st = blob.stat()
    os.chmod(blob, 0o644)
    with blob.open("r+b") as fh:
        fh.seek(st.st_size - 3)
        byte = fh.read(1)
        fh.seek(st.st_size - 3)
        fh.write(bytes([byte[0] ^ 0x55]))
    os.chmod(blob, 0o444)
    os.utime(blob, ns=(st.st_atime_ns, st.st_mtime_ns))


class Rig:
    def __init__(self, lumbung_home: Path, tmp: Path) -> None:
        gemma = embedded_model_path(lumbung_home, GEMMA)
        self.home = tmp / "home"
        self.home.mkdir()
        adapter = write_lora(gemma, tmp / "test-lora.gguf", magnitude=0.05)
        same = tmp / "stored-lora.gguf"
        shutil.copy(adapter, same)  # the same weights, from the store
        other = write_lora(gemma, tmp / "tampered-lora.gguf", magnitude=0.05, seed=11)
        stored, tampered = pull(self.home, same), pull(self.home, other)
        tamper(self.home, tampered)
        config = {
            "serve_default_model": False,
            "prefix_cache_mb": 0,
            "models": [
                {
                    "id": BASE,
                    "path": str(gemma),
                    "context_size": 512,
                    "adapters": [
                        {"name": "test", "path": str(adapter)},
                        {"name": "stored", "ref": stored},
                        {"name": "tampered", "ref": tampered},
                        {"name": "pinned", "path": str(adapter), "sha256": "0" * 64},
                        {"name": "sql", "id": "sql-expert", "path": str(adapter), "scale": 0.0},
                    ],
                }
            ],
        }
        self.server = ServerProcess(self.home, config=config, log_dir=tmp).start()
        self.client = openai.OpenAI(base_url=self.server.base_url + "/v1", api_key="x", max_retries=0)

    def answer(self, model: str) -> str:
        done = self.client.chat.completions.create(
            model=model,
            messages=MSG,  # type: ignore[arg-type]
            temperature=0,
            max_tokens=12,
        )
        return done.choices[0].message.content or ""

    def stop(self) -> None:
        self.client.close()
        self.server.stop()


@pytest.fixture(scope="module")
def rig(lumbung_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    r = Rig(lumbung_home, tmp_path_factory.mktemp("lora-serve"))
    yield r
    r.stop()


def test_adapters_are_models_in_both_listings(rig: Rig) -> None:
    ids = {m.id for m in rig.client.models.list()}
    assert {f"{BASE}+test", f"{BASE}+stored", f"{BASE}+tampered", f"{BASE}+pinned", "sql-expert"} <= ids
    tags = httpx.get(rig.server.base_url + "/api/tags").json()
    assert "sql-expert" in {m["name"] for m in tags["models"]}


def test_adapter_answers_through_openai_and_ollama(rig: Rig) -> None:
    base = rig.answer(BASE)
    with_adapter = rig.answer(f"{BASE}+test")
    assert with_adapter != base
    assert rig.answer(f"{BASE}+stored") == with_adapter  # the same weights, pulled into the store
    assert rig.answer("sql-expert") == base  # a configured id, at scale 0
    body = {
        "model": f"{BASE}+test",
        "messages": MSG,
        "stream": False,
        "options": {"temperature": 0, "num_predict": 12},
    }
    ollama = httpx.post(rig.server.base_url + "/api/chat", json=body, timeout=120)
    assert ollama.status_code == 200, ollama.text
    assert ollama.json()["message"]["content"] == with_adapter


def test_concurrent_requests_with_and_without_the_adapter(rig: Rig) -> None:
    alone = {m: rig.answer(m) for m in (BASE, f"{BASE}+test")}
    models = [BASE, f"{BASE}+test"] * 2
    with ThreadPoolExecutor(len(models)) as pool:
        together = list(pool.map(rig.answer, models))
    assert together == [alone[m] for m in models]


@pytest.mark.parametrize("model", [f"{BASE}+tampered", f"{BASE}+pinned"])
def test_an_adapter_that_fails_its_sha256_is_refused(rig: Rig, model: str) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        rig.answer(model)
    assert err.value.status_code == 500 and "retry-after" not in err.value.response.headers
    assert "sha256" in str(err.value.body)
    assert rig.answer(BASE)  # the base model serves on


def test_ps_shows_adapter_memory(rig: Rig) -> None:
    rig.answer(f"{BASE}+test")
    models = {m["id"]: m for m in httpx.get(rig.server.base_url + "/v1/models").json()["data"]}
    loaded = models[f"{BASE}+test"]
    assert loaded["memory_bytes"] > 0 and loaded["adapter"]["loaded"] and loaded["base_model"] == BASE
    assert f"{BASE}+test" in {a["id"] for a in models[BASE]["adapters"]}
    row = next(line for line in rig.server.ps().splitlines() if f"{BASE}+test" in line)
    assert "MiB" in row
