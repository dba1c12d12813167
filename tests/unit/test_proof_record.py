"""Recording live traffic through the gateway, in process over real HTTP to a fake cloud upstream:
what an exchange keeps (text, tool calls, finish reason, usage, latency, TTFT, provider; streamed
answers reassembled), whatever the surface and path (pass-through bytes or typed), and the rules
around it: sampling, redaction (grep the bytes), size caps, retention, drops under load."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lumbung import record
from lumbung.accounts.keys import Caller
from lumbung.accounts.policy import KeyPolicy
from lumbung.config import RecordingConfig
from lumbung.proof.exchange import Exchange, read_exchanges, recording_path
from lumbung.proof.recorder import Recorder
from lumbung.proof.tap import ProofTap, key_recording
from lumbung.record import RequestRecord
from lumbung.types import ChatRequest, Message
from tests.support.fake_backend import FakeBackend, Say
from tests.support.fake_upstream import FakeUpstream
from tests.support.inprocess import InProcess, in_process, route
from tests.support.surfaces import SURFACES, Surface

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            },
        },
    }
]


@pytest.fixture
async def cloud() -> AsyncIterator[FakeUpstream]:
    up = FakeUpstream("cloud", words=5)
    server = await up.serve()
    yield up
    server.close()
    await server.wait_closed()


def recorded(lb: InProcess, name: str) -> list[Exchange]:
    tap = lb.gateway.tap
    assert isinstance(tap, ProofTap)
    tap.recorder.flush()
    path = recording_path(lb.settings.home, name)
    return list(read_exchanges(path)) if path.exists() else []


def chat(model: str, stream: bool, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "Weather in Jakarta?"}],
        "stream": stream,
        **extra,
    }


@pytest.mark.parametrize("passthrough", [True, False])
async def test_plain_and_tool_call_answers_are_recorded_whole_and_streamed(
    tmp_path: Path, cloud: FakeUpstream, passthrough: bool
) -> None:
    routes = [route("gpt", ["cloud"], record={"rate": 1.0}, passthrough=passthrough)]
    async with in_process(tmp_path, providers={"cloud": cloud.base_url}, routes=routes) as lb:
        answers = []
        for stream in (False, True):
            for tools in (None, TOOLS):
                body = chat("gpt", stream, **({"tools": TOOLS} if tools else {}))
                response = await lb.client.post("/v1/chat/completions", json=body)
                assert response.status_code == 200, response.text
                answers.append((stream, tools, response.headers["x-request-id"]))
        exchanges = recorded(lb, "gpt")
    assert [e.id for e in exchanges] == [rid for _, _, rid in answers]
    for exchange, (stream, tools, _) in zip(exchanges, answers, strict=True):
        assert exchange.role == "recorded" and exchange.surface == "openai" and exchange.route == "gpt"
        assert exchange.stream is stream
        assert exchange.request["messages"][0]["content"] == "Weather in Jakarta?"
        assert exchange.request["model"] == "gpt"
        assert exchange.provider == "cloud/m"
        assert exchange.latency_ms is not None and exchange.latency_ms > 0
        assert exchange.ttft_ms is not None and exchange.ttft_ms <= exchange.latency_ms
        assert exchange.response is not None and exchange.response["object"] == "chat.completion"
        choice = exchange.response["choices"][0]
        assert exchange.response["usage"]["prompt_tokens"] == 5
        if tools and (stream or not passthrough):  # the fake answers whole requests with text only
            assert exchange.request["tools"][0]["function"]["name"] == "weather"
            assert choice["finish_reason"] == "tool_calls"
            call = choice["message"]["tool_calls"][0]
            assert call["function"]["name"] == "weather"
            assert json.loads(call["function"]["arguments"]) == {"city": "Jakarta", "days": 3}
        else:
            assert choice["finish_reason"] == "stop"
            assert choice["message"]["content"] == "Hello w1 w2 w3 from cloud"


async def test_json_schema_answers_from_the_anthropic_surface_are_recorded_as_chat(tmp_path: Path) -> None:
    cloud = FakeBackend("cloud", ["m"], default=Say(('{"city": ', '"Jakarta"}')))
    async with in_process(
        tmp_path, providers={"cloud": cloud}, routes=[route("gpt", ["cloud"], record=True)]
    ) as lb:
        schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        body = chat(
            "gpt",
            False,
            response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
        )
        assert (await lb.client.post("/v1/chat/completions", json=body)).status_code == 200
        anthropic = {
            "model": "gpt",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        }
        response = await lb.client.post(
            "/v1/messages", json=anthropic, headers={"anthropic-version": "2023-06-01"}
        )
        assert response.status_code == 200, response.text
        first, second = recorded(lb, "gpt")
    assert first.request["response_format"]["json_schema"]["schema"] == schema
    assert json.loads(first.response["choices"][0]["message"]["content"]) == {"city": "Jakarta"}  # type: ignore[index]
    assert second.surface == "anthropic" and second.stream is True
    assert second.request["messages"] == [{"role": "user", "content": "hi"}]
    assert second.request["max_tokens"] == 50
    assert second.response["choices"][0]["message"]["content"] == '{"city": "Jakarta"}'  # type: ignore[index]


async def test_a_failed_request_is_recorded_with_its_error(tmp_path: Path, cloud: FakeUpstream) -> None:
    cloud.set("500")
    async with in_process(
        tmp_path, providers={"cloud": cloud.base_url}, routes=[route("gpt", ["cloud"], record=True)]
    ) as lb:
        response = await lb.client.post("/v1/chat/completions", json=chat("gpt", False))
        assert response.status_code >= 500
        (exchange,) = recorded(lb, "gpt")
    assert exchange.response is None and exchange.error


async def test_routes_without_record_write_nothing(tmp_path: Path, cloud: FakeUpstream) -> None:
    async with in_process(
        tmp_path, providers={"cloud": cloud.base_url}, routes=[route("gpt", ["cloud"])]
    ) as lb:
        assert (await lb.client.post("/v1/chat/completions", json=chat("gpt", True))).status_code == 200
        assert recorded(lb, "gpt") == []
    assert not (tmp_path / "recordings").exists()


async def test_the_sampling_rate_picks_requests_by_the_tap_s_random_source(
    tmp_path: Path, cloud: FakeUpstream
) -> None:
    async with in_process(
        tmp_path, providers={"cloud": cloud.base_url}, routes=[route("gpt", ["cloud"], record=0.3)]
    ) as lb:
        tap = lb.gateway.tap
        assert isinstance(tap, ProofTap)
        tap.rng = random.Random(7)
        ids = []
        for _ in range(40):
            response = await lb.client.post("/v1/chat/completions", json=chat("gpt", False))
            ids.append(response.headers["x-request-id"])
        exchanges = recorded(lb, "gpt")
    draws = random.Random(7)
    expected = [rid for rid in ids if draws.random() < 0.3]
    assert 0 < len(expected) < 40
    assert [e.id for e in exchanges] == expected


async def test_redacted_values_never_reach_any_file_under_the_data_dir(
    tmp_path: Path, cloud: FakeUpstream
) -> None:
    secret_user, card, answer_word = "alice-7f3e9", "4111-1111-1111-1111", "w2"
    redact = {
        "paths": ["request.user", "response.choices[*].message.content"],
        "patterns": [r"\d{4}-\d{4}-\d{4}-\d{4}"],
    }
    async with in_process(
        tmp_path,
        providers={"cloud": cloud.base_url},
        routes=[route("gpt", ["cloud"], record=True, passthrough=False)],
        recording={"redact": redact},
    ) as lb:
        body = chat("gpt", True, user=secret_user)
        body["messages"][0]["content"] = f"Charge card {card} please"
        response = await lb.client.post("/v1/chat/completions", json=body)
        assert answer_word in response.text and response.status_code == 200
        (exchange,) = recorded(lb, "gpt")
    assert exchange.request["user"] == "[REDACTED]"
    assert exchange.request["messages"][0]["content"] == "Charge card [REDACTED] please"
    assert exchange.response["choices"][0]["message"]["content"] == "[REDACTED]"  # type: ignore[index]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        for secret in (secret_user, card, "Hello w1 w2"):
            assert secret.encode() not in data, path


async def test_size_caps_skip_large_exchanges_and_stop_a_full_recording(
    tmp_path: Path, cloud: FakeUpstream
) -> None:
    caps = {"max_exchange_bytes": 2048, "max_recording_bytes": 4096}
    async with in_process(
        tmp_path,
        providers={"cloud": cloud.base_url},
        routes=[route("gpt", ["cloud"], record=True)],
        recording=caps,
    ) as lb:
        big = chat("gpt", False)
        big["messages"][0]["content"] = "x" * 4000
        assert (await lb.client.post("/v1/chat/completions", json=big)).status_code == 200
        for _ in range(12):
            assert (await lb.client.post("/v1/chat/completions", json=chat("gpt", False))).status_code == 200
        exchanges = recorded(lb, "gpt")
        metrics = (await lb.client.get("/metrics")).text
    path = recording_path(tmp_path, "gpt")
    assert 0 < len(exchanges) < 12
    assert all("x" * 100 not in e.request["messages"][0]["content"] for e in exchanges)
    assert path.stat().st_size <= 4096
    assert 'lumbung_recorded_exchanges_total{outcome="too_large"} 1.0' in metrics
    assert f'lumbung_recorded_exchanges_total{{outcome="full"}} {12 - len(exchanges)}.0' in metrics


def _exchange(rid: str, created: float) -> Exchange:
    return Exchange(id=rid, request={"model": "m", "messages": []}, response=None, created=created)


def test_retention_deletes_only_exchanges_older_than_its_days(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    path = recording_path(tmp_path, "old")
    path.parent.mkdir(parents=True)
    lines = [_exchange("a", now - 10 * 86400), _exchange("b", now - 3600), _exchange("c", now - 3 * 86400)]
    path.write_text("".join(e.to_json() + "\n" for e in lines))
    gone = recording_path(tmp_path, "gone")
    gone.write_text(_exchange("z", now - 40 * 86400).to_json() + "\n")
    recorder = Recorder(tmp_path, RecordingConfig(retention_days=2), clock=lambda: now)
    recorder.start()
    recorder.submit("new", lambda: _exchange("d", now))
    recorder.flush()
    recorder.close()
    assert [e.id for e in read_exchanges(path)] == ["b"]
    assert not gone.exists()
    assert [e.id for e in read_exchanges(recording_path(tmp_path, "new"))] == ["d"]


def test_a_full_queue_drops_and_counts_instead_of_waiting(tmp_path: Path) -> None:
    building, release = threading.Event(), threading.Event()

    def slow() -> Exchange:
        building.set()
        release.wait(10)
        return _exchange("slow", time.time())

    recorder = Recorder(tmp_path, RecordingConfig(queue=1, retention_days=None))
    recorder.submit("r", slow)
    assert building.wait(10)
    recorder.submit("r", lambda: _exchange("queued", time.time()))
    recorder.submit("r", lambda: _exchange("dropped", time.time()))
    assert recorder.counts["dropped"] == 1
    release.set()
    recorder.flush()
    recorder.close()
    assert [e.id for e in read_exchanges(recording_path(tmp_path, "r"))] == ["slow", "queued"]


async def test_a_key_with_a_record_rate_records_into_its_own_recording(tmp_path: Path) -> None:
    local = FakeBackend("local", ["fake-model"], default=Say(("hi", " there")))
    async with in_process(tmp_path, local=local) as lb:
        policy = KeyPolicy(id="key_1", name="ci", record=1.0)
        rec = RequestRecord(id="req-key-1", method="POST", path="/v1/chat/completions")
        rec.caller = Caller(owner="digest", sees_all=False, policy=policy)
        token = record.current.set(rec)
        try:
            request = ChatRequest(model="fake-model", messages=[Message("user", "hello")])
            answer = await lb.gateway.complete(request)
        finally:
            record.current.reset(token)
        rec.close()
        (exchange,) = recorded(lb, key_recording("ci"))
    assert answer.text == "hi there"
    assert exchange.id == "req-key-1" and exchange.key == "key_1"
    assert exchange.response["choices"][0]["message"]["content"] == "hi there"  # type: ignore[index]
    assert exchange.provider == "local/fake-model"


@pytest.mark.parametrize("surface", SURFACES, ids=lambda s: s.name)
@pytest.mark.parametrize("stream", [False, True])
async def test_every_chat_surface_is_recorded_as_a_chat_exchange(
    tmp_path: Path, surface: Surface, stream: bool
) -> None:
    cloud = FakeBackend("cloud", ["m"], default=Say(("Selamat", " pagi")))
    routes = [route("gpt", ["cloud"], record=True)]
    async with in_process(tmp_path, providers={"cloud": cloud}, routes=routes) as lb:
        body = surface.body("gpt", stream=stream)
        response = await lb.client.post(surface.path, json=body, headers=surface.headers)
        assert response.status_code == 200, response.text
        exchanges = recorded(lb, "gpt")
    if surface.name == "openai.completions":  # a raw prompt has no chat request to replay
        assert exchanges == []
        return
    (exchange,) = exchanges
    assert exchange.surface == {"openai.responses": "responses", "openai.chat": "openai"}.get(
        surface.name, surface.name.split(".")[0]
    )
    assert exchange.request["messages"][-1] == {"role": "user", "content": "hi"}
    assert exchange.response["choices"][0]["message"]["content"] == "Selamat pagi"  # type: ignore[index]
    assert exchange.id == response.headers["x-request-id"]


async def test_the_writer_is_woken_only_after_the_answer_s_last_bytes_left(tmp_path: Path) -> None:
    """A submit from the loop reaches the writer a turn later: the callbacks of the turn that wrote
    the answer (its last bytes corked in the transport) run before the writer thread can want the GIL."""
    recorder = Recorder(tmp_path, RecordingConfig(retention_days=None))
    order: list[str] = []

    def build() -> Exchange:
        order.append("built")
        return _exchange("one", time.time())

    recorder.submit("r", build)
    recorder.submit("r", lambda: _exchange("two", time.time()))
    time.sleep(0.05)  # the GIL released within the turn, as uvloop does between callbacks
    order.append("this turn ends")
    await asyncio.sleep(0)
    recorder.flush()
    recorder.close()
    assert order == ["this turn ends", "built"]
    assert [e.id for e in read_exchanges(recording_path(tmp_path, "r"))] == ["one", "two"]


async def test_flush_and_close_hand_over_what_was_submitted_this_turn(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, RecordingConfig(retention_days=None))
    recorder.submit("r", lambda: _exchange("now", time.time()))
    recorder.flush()  # no turn passed: flush hands it over itself
    assert [e.id for e in read_exchanges(recording_path(tmp_path, "r"))] == ["now"]
    recorder.submit("r", lambda: _exchange("at-close", time.time()))
    recorder.close()
    assert [e.id for e in read_exchanges(recording_path(tmp_path, "r"))] == ["now", "at-close"]
