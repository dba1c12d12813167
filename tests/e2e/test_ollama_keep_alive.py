"""Ollama's keep_alive, load and unload requests, and /api/ps, through the `ollama` client.

These change which models are loaded, so they run on a server of their own (the shared `server`
fixture's model stays loaded for the other surface tests).
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from tests.support.server import ServerProcess

MODEL = "smollm2:135m"
HELLO = [{"role": "user", "content": "Write a short poem about rice barns."}]


@pytest.fixture(scope="module")
def own_server(lumbung_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(lumbung_home, config={}, log_dir=tmp_path_factory.mktemp("keep-alive")).start()
    yield proc
    proc.stop()


@pytest.fixture
def client(own_server: ServerProcess) -> Iterator[ollama.Client]:
    with ollama.Client(host=own_server.base_url, timeout=120) as c:
        yield c


def _running(client: ollama.Client) -> dict[str, ollama.ProcessResponse.Model]:
    return {m.model or "": m for m in client.ps().models}


def _seconds_left(entry: ollama.ProcessResponse.Model) -> float:
    assert entry.expires_at is not None
    return (entry.expires_at - datetime.datetime.now(datetime.UTC)).total_seconds()


def _wait_unloaded(client: ollama.Client, limit: float = 20.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if MODEL not in _running(client):
            return True
        time.sleep(0.2)
    return False


def test_ps_shows_the_engines_memory_and_expiry(client: ollama.Client, own_server: ServerProcess) -> None:
    loaded = client.generate(model="default", prompt="", keep_alive=-1)
    assert loaded.done and loaded.done_reason == "load" and loaded.response == ""
    entry = _running(client)[MODEL]
    engine = httpx.get(f"{own_server.base_url}/v1/models/{MODEL}", timeout=10).json()
    assert entry.size and entry.size == engine["memory_bytes"] and entry.size_vram == 0
    assert _seconds_left(entry) > 200 * 365 * 86400  # kept forever: about 292 years on, as Ollama shows
    assert entry.context_length == engine["context_length"]

    client.chat(model="default", messages=HELLO, options={"num_predict": 2}, keep_alive="1h30m")
    assert 5400 - 60 < _seconds_left(_running(client)[MODEL]) <= 5400
    client.embed(model="default", input="rice barn", keep_alive=600)
    assert 600 - 60 < _seconds_left(_running(client)[MODEL]) <= 600
    client.chat(model="default", messages=HELLO, options={"num_predict": 2})  # no keep_alive: unchanged
    assert 600 - 60 < _seconds_left(_running(client)[MODEL]) <= 600


def test_unload_then_load_requests(client: ollama.Client) -> None:
    client.generate(model="default", prompt="", keep_alive="-1m")
    unloaded = client.generate(model="default", prompt="", keep_alive=0)
    assert unloaded.done and unloaded.done_reason == "unload" and unloaded.response == ""
    assert MODEL not in _running(client)  # it was idle: gone before the answer
    loaded = client.chat(model="default", messages=[])
    assert loaded.done and loaded.done_reason == "load" and loaded.message.content == ""
    entry = _running(client)[MODEL]
    assert _seconds_left(entry) > 200 * 365 * 86400  # a reload starts from the configured keep-alive
    by_chat = client.chat(model="default", messages=[], keep_alive="0s")
    assert by_chat.done_reason == "unload" and by_chat.message.role == "assistant"
    assert MODEL not in _running(client)
    again = client.chat(model="default", messages=HELLO, options={"temperature": 0, "num_predict": 4})
    assert again.done and again.eval_count == 4  # the next request loads it again


def test_unload_lets_requests_in_flight_finish(client: ollama.Client, own_server: ServerProcess) -> None:
    client.generate(model="default", prompt="", keep_alive=-1)
    stream = client.generate(
        model="default",
        prompt="The rice barn stood",
        raw=True,
        stream=True,
        options={"temperature": 0, "num_predict": 128},
    )
    parts = [next(stream)]  # generating now
    unloads: list[ollama.GenerateResponse] = []

    def unload() -> None:
        with ollama.Client(host=own_server.base_url, timeout=60) as other:
            unloads.append(other.generate(model="default", prompt="", keep_alive=0))

    thread = threading.Thread(target=unload)  # another client, while this one's stream is open
    thread.start()
    thread.join(timeout=60)
    assert unloads and unloads[0].done_reason == "unload"  # answered without waiting for the stream
    assert MODEL in _running(client)  # still generating: it stays
    parts.extend(stream)
    assert parts[-1].done and parts[-1].done_reason == "length" and parts[-1].eval_count == 128
    assert all(not p.done for p in parts[:-1])
    assert _wait_unloaded(client)  # and then the model goes


def test_a_short_keep_alive_unloads_the_idle_model(client: ollama.Client) -> None:
    client.chat(model="default", messages=HELLO, options={"num_predict": 2}, keep_alive="1s")
    assert _wait_unloaded(client)
    client.chat(model="default", messages=HELLO, options={"num_predict": 2}, keep_alive=0)
    assert _wait_unloaded(client)  # answered, then unloaded at once
    client.chat(model="default", messages=HELLO, options={"num_predict": 2})
    assert _seconds_left(_running(client)[MODEL]) > 200 * 365 * 86400  # back to the configured one


def test_an_empty_embed_loads_the_model_with_its_keep_alive(client: ollama.Client) -> None:
    client.generate(model="default", prompt="", keep_alive=0)
    assert MODEL not in _running(client)
    done = client.embed(model="default", input=[], keep_alive="10m")
    assert done.embeddings == [] and 600 - 60 < _seconds_left(_running(client)[MODEL]) <= 600
    client.generate(model="default", prompt="", keep_alive=0)
    assert client.embeddings(model="default", prompt="", keep_alive=-1).embedding == []
    assert _seconds_left(_running(client)[MODEL]) > 200 * 365 * 86400


def test_a_keep_alive_beyond_any_date_is_forever_and_ps_still_answers(client: ollama.Client) -> None:
    for value in (1e30, 10**40, "99999999999999h"):
        loaded = client.generate(model="default", prompt="", keep_alive=value)  # type: ignore[arg-type]
        assert loaded.done_reason == "load"
        assert _seconds_left(_running(client)[MODEL]) > 200 * 365 * 86400  # /api/ps answers: forever
    client.generate(model="default", prompt="", keep_alive=0)


def test_bad_keep_alive_is_a_400_in_ollamas_envelope(
    client: ollama.Client, own_server: ServerProcess
) -> None:
    bodies = [
        ("/api/chat", {"model": "default", "messages": HELLO}),
        ("/api/chat", {"model": "default", "messages": []}),
        ("/api/generate", {"model": "default", "prompt": ""}),
        ("/api/embed", {"model": "default", "input": "x"}),
        ("/api/embeddings", {"model": "default", "prompt": "x"}),
    ]
    for path, body in bodies:
        for value in ("soon", "5x", "1h 30m", True, {"m": 5}, [1]):
            r = httpx.post(own_server.base_url + path, json={**body, "keep_alive": value}, timeout=30)
            assert r.status_code == 400, (path, value, r.text)
            assert set(r.json()) == {"error"} and "keep_alive" in r.json()["error"]
    with pytest.raises(ollama.ResponseError) as err:
        client.generate(model="default", prompt="", keep_alive="never")
    assert err.value.status_code == 400 and "keep_alive" in err.value.error
    with pytest.raises(ollama.ResponseError) as err:
        client.generate(model="no-such-model", prompt="", keep_alive=0)
    assert err.value.status_code == 404
