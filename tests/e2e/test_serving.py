"""Serving behaviour: disconnects free the engine, one log line per request, load failures on /health."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai

from lumbung.store.embedded import GEMMA, embedded_model_path
from tests.conftest import Closing
from tests.support.gguf_files import write_gguf
from tests.support.server import ServerProcess

PROMPT = [{"role": "user", "content": "Tell me a very long story about the rice barn."}]


def active_requests(server: ServerProcess) -> int:
    models = httpx.get(server.base_url + "/v1/models", timeout=10).json()["data"]
    return sum(m.get("active_requests", 0) for m in models)


def test_disconnect_mid_stream_stops_generation(server: ServerProcess, closing: Closing) -> None:
    client = closing(openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0))
    stream = client.chat.completions.create(
        model="gemma3:270m", messages=PROMPT, max_tokens=3000, temperature=1.0, seed=3, stream=True
    )
    for seen, chunk in enumerate(stream, 1):
        assert not (chunk.choices and chunk.choices[0].finish_reason), "finished before the disconnect"
        if seen == 4:
            break
    assert active_requests(server) == 1  # still generating: 3000 tokens take far longer than this
    stream.close()
    deadline = time.monotonic() + 5
    while active_requests(server) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert active_requests(server) == 0
    done = client.chat.completions.create(model="gemma3:270m", messages=PROMPT, max_tokens=16)
    assert done.usage and done.usage.completion_tokens == 16


def test_disconnect_while_waiting_for_a_non_streaming_answer(server: ServerProcess) -> None:
    body = {"model": "gemma3:270m", "messages": PROMPT, "max_tokens": 3000, "temperature": 1.0, "seed": 3}
    with contextlib.suppress(httpx.ReadTimeout):
        httpx.post(server.base_url + "/v1/chat/completions", json=body, timeout=1.0)
    deadline = time.monotonic() + 5
    while active_requests(server) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert active_requests(server) == 0


def test_one_structured_log_line_per_request_without_prompts(server: ServerProcess) -> None:
    secret = "PURPLE-ELEPHANT-4471"
    response = httpx.post(
        server.base_url + "/v1/chat/completions",
        json={"model": "gemma3:270m", "messages": [{"role": "user", "content": secret}], "max_tokens": 3},
        timeout=60,
    )
    request_id = response.headers["x-request-id"]
    deadline = time.monotonic() + 5
    while request_id not in server.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [line for line in server.logs().splitlines() if request_id in line]
    assert len(lines) == 1
    record = json.loads(lines[0][lines[0].index("{") :])
    assert record["status"] == 200 and record["model"] == "gemma3:270m"
    assert record["completion_tokens"] == 3 and record["prompt_tokens"] > 0
    assert record["latency_ms"] > 0
    assert secret not in server.logs()


def test_health_reports_a_model_that_fails_to_load(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """A GGUF whose header is sound but which llama.cpp cannot load (no model in its tensors) passes
    the start-up check, fails its load, and is answered as permanent: 500, no Retry-After."""
    odd = write_gguf(tmp_path / "no-model.gguf")
    proc = start_server(
        config={"models": [{"id": "broken", "path": str(odd)}], "serve_default_model": False},
        wait_ready=False,
    )
    deadline = time.monotonic() + 60
    status = None
    while time.monotonic() < deadline:
        try:
            status = httpx.get(proc.base_url + "/health", timeout=2)
            if status.json().get("status") == "error":
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    assert status is not None and status.status_code == 503
    assert status.json()["status"] == "error"
    response = httpx.post(
        proc.base_url + "/v1/chat/completions",
        json={"model": "broken", "messages": [{"role": "user", "content": "Hi"}]},
        timeout=30,
    )
    assert response.status_code == 500 and "retry-after" not in response.headers
    error = response.json()["error"]
    assert error["code"] == "model_unavailable" and "no-model.gguf" in error["message"]


def test_a_configured_file_that_is_not_a_gguf_stops_start_up(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a model" * 10)
    proc = start_server(
        config={"serve_default_model": False, "models": [{"id": "broken", "path": str(bad)}]},
        wait_ready=False,
    )
    assert proc.proc is not None and proc.proc.wait(timeout=120) != 0
    logs = proc.logs()
    assert "model 'broken'" in logs and "bad magic" in logs and "broken.gguf" in logs
    assert f"{proc.config_path}:" in logs  # the config line of its `path`


def test_a_model_file_that_breaks_after_start_up_is_a_permanent_error_in_every_api(
    start_server: Callable[..., ServerProcess], tmp_path: Path, lumbung_home: Path
) -> None:
    late, gone = write_gguf(tmp_path / "late.gguf"), write_gguf(tmp_path / "gone.gguf", seed=1)
    proc = start_server(
        config={
            "serve_default_model": False,
            "models": [
                {"id": "gemma", "path": str(embedded_model_path(lumbung_home, GEMMA))},  # loads at start-up
                {"id": "late", "path": str(late)},
                {"id": "gone", "path": str(gone)},
            ],
        }
    )
    late.write_bytes(b"overwritten by something else" * 4)
    gone.unlink()
    hi = [{"role": "user", "content": "Hi"}]
    with httpx.Client(base_url=proc.base_url, timeout=60) as http:
        openai_style = http.post("/v1/chat/completions", json={"model": "late", "messages": hi})
        embeddings = http.post("/v1/embeddings", json={"model": "gone", "input": "hi"})
        anthropic = http.post(
            "/v1/messages",
            json={"model": "gone", "max_tokens": 4, "messages": hi},
            headers={"anthropic-version": "2023-06-01"},
        )
        ollama = http.post("/api/chat", json={"model": "late", "messages": hi, "stream": False})
        served = http.post("/v1/chat/completions", json={"model": "gemma", "messages": hi, "max_tokens": 2})
    for response in (openai_style, embeddings, anthropic, ollama):
        assert response.status_code == 500 and "retry-after" not in response.headers, response.text
    assert openai_style.json()["error"]["code"] == "model_unavailable"
    assert "late.gguf" in openai_style.json()["error"]["message"]
    assert "bad magic" in openai_style.json()["error"]["message"]
    assert "gone.gguf" in embeddings.json()["error"]["message"]
    assert anthropic.json()["type"] == "error" and anthropic.json()["error"]["type"] == "api_error"
    assert "gone.gguf" in anthropic.json()["error"]["message"]
    assert set(ollama.json()) == {"error"} and "late.gguf" in ollama.json()["error"]
    assert served.status_code == 200  # the others serve on
