"""The pass-through hot path's own boundary (surfaces/openai_passthrough.py runs below Starlette, so it
keeps the endpoint boundary itself): API keys, the body limit, OpenAI's error envelope, x-request-id,
the log line, a client that hangs up, and requests it must hand to the typed path with their body
intact. A real `lumbung serve`, fake upstreams on 127.0.0.1, the `openai` SDK and raw httpx."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.server import ServerProcess

KEY = "sk-passthrough-test"
LIMIT = 4096
MSG = [{"role": "user", "content": "hi"}]


class Rig:
    def __init__(self, home: Path, log_dir: Path) -> None:
        self.up = FakeUpstream(name="up").start()
        self.hang = FakeUpstream(name="hang", mode="hang_before_headers").start()
        self.claude = FakeUpstream(name="claude").start()
        providers = [
            {"name": name, "kind": kind, "base_url": up.base_url, "jurisdiction": "ID"}
            for name, kind, up in (
                ("up", "openai", self.up),
                ("hang", "openai", self.hang),
                ("claude", "anthropic", self.claude),
            )
        ]
        config = {
            "serve_default_model": False,
            "api_keys": [KEY],
            "max_body_bytes": LIMIT,
            "providers": providers,
            "routes": [
                {"name": "fast", "tiers": [["up/m1"]]},
                {
                    "name": "m1",
                    "tiers": [["up/m1"]],
                },  # the upstream's own name: the client's bytes go as sent
                {"name": "typed", "tiers": [["up/m1"]], "passthrough": False},
                {"name": "hangs", "tiers": [["hang/m1"]]},
                {"name": "mixed", "tiers": [["claude/m1"], ["up/m1"]]},  # not all OpenAI: typed path
            ],
        }
        self.server = ServerProcess(home, config=config, log_dir=log_dir).start(timeout=60)
        self.url = self.server.base_url + "/v1/chat/completions"
        self.client = openai.OpenAI(base_url=self.server.base_url + "/v1", api_key=KEY, max_retries=0)

    def stop(self) -> None:
        self.client.close()
        self.server.stop()
        for up in (self.up, self.hang, self.claude):
            up.stop()

    def log_entry(self, request_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for line in self.server.logs().splitlines():
                if "lumbung.access" in line and f'"id":"{request_id}"' in line:
                    entry: dict[str, Any] = json.loads(line[line.index("{") :])
                    return entry
            time.sleep(0.05)
        raise AssertionError(f"no log line for {request_id}")


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, lumbung_home: Path) -> Iterator[Rig]:
    r = Rig(lumbung_home, tmp_path_factory.mktemp("passthrough-logs"))
    yield r
    r.stop()


def auth(key: str = KEY) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_whole_and_streamed_answers_pass_through(rig: Rig) -> None:
    done = rig.client.chat.completions.create(model="fast", messages=MSG)  # type: ignore[arg-type]
    assert done.model == "fast" and done.choices[0].message.content == "Hello w1 w2 w3 w4 from up"
    assert rig.up.seen[-1].body["model"] == "m1"
    chunks = rig.client.chat.completions.create(
        model="fast",
        messages=MSG,
        stream=True,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    )
    got = list(chunks)
    assert "".join(c.choices[0].delta.content or "" for c in got if c.choices) == "Hello w1 w2 w3 w4 from up"
    assert got[-1].usage is not None and got[-1].usage.completion_tokens == 6


@pytest.mark.parametrize("stream", [False, True])
def test_request_id_and_usage_reach_the_log_line(rig: Rig, stream: bool) -> None:
    rid = f"req-pass-{stream}"
    body = {"model": "fast", "messages": MSG, "stream": stream}
    r = httpx.post(rig.url, json=body, headers={**auth(), "x-request-id": rid})
    assert r.status_code == 200 and r.headers["x-request-id"] == rid
    if stream:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.text.rstrip().endswith("data: [DONE]")
    entry = rig.log_entry(rid)
    assert entry["status"] == 200 and entry["model"] == "fast" and entry["completion_tokens"] == 6
    assert entry.get("stream", False) is stream


def test_a_missing_or_wrong_key_is_refused_before_anything_goes_upstream(rig: Rig) -> None:
    seen = len(rig.up.seen)
    for headers, code in (({}, "missing_api_key"), (auth("sk-wrong"), "invalid_api_key")):
        r = httpx.post(rig.url, json={"model": "fast", "messages": MSG}, headers=headers)
        assert r.status_code == 401
        err = r.json()["error"]
        assert err["type"] == "authentication_error"
        assert err["code"] == code
        assert r.headers["x-request-id"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=rig.server.base_url + "/v1", api_key="sk-wrong", max_retries=0
        ).chat.completions.create(
            model="fast",
            messages=MSG,  # type: ignore[arg-type]
        )
    assert len(rig.up.seen) == seen


def test_a_body_over_the_limit_is_413_declared_or_not(rig: Rig) -> None:
    seen = len(rig.up.seen)
    big = {"model": "fast", "messages": [{"role": "user", "content": "x" * LIMIT}]}
    r = httpx.post(rig.url, json=big, headers=auth())
    assert r.status_code == 413 and r.json()["error"]["message"].startswith("The request body is larger")

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        yield json.dumps(big).encode()

    r = httpx.post(rig.url, content=chunked(), headers={**auth(), "content-type": "application/json"})
    assert r.status_code == 413 and "error" in r.json()
    assert len(rig.up.seen) == seen


def test_what_the_hot_path_declines_reaches_the_typed_path_with_its_body(rig: Rig) -> None:
    r = httpx.post(rig.url, content=b'{"model": "fast", "messages": [', headers=auth())
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    done = rig.client.chat.completions.create(model="mixed", messages=MSG)  # type: ignore[arg-type]
    assert done.model == "mixed" and done.choices[0].message.content == "Hello w1 w2 w3 w4 from claude"
    r = httpx.post(rig.url, json={"model": "no-such-model", "messages": MSG}, headers=auth())
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = httpx.get(rig.url, headers=auth())  # another method: Starlette's 405
    assert r.status_code == 405


def test_a_client_hanging_up_on_a_whole_answer_cancels_the_upstream_call(rig: Rig) -> None:
    before = len(rig.hang.disconnects)
    body = json.dumps({"model": "hangs", "messages": MSG}).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n"
        f"x-request-id: req-hangup\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", rig.server.port)) as sock:
        sock.sendall(head + body)
        deadline = time.monotonic() + 5
        while len(rig.hang.seen) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert rig.hang.seen, "the request never reached the upstream"
    gone = time.monotonic()
    while len(rig.hang.disconnects) == before and time.monotonic() - gone < 5:
        time.sleep(0.02)
    assert len(rig.hang.disconnects) > before
    assert rig.hang.disconnects[-1] - gone < 1.0
    entry = rig.log_entry("req-hangup")
    assert entry["status"] == 499 and entry["error"] == "client_disconnected"


@pytest.mark.parametrize("model", ["fast", "typed", "mixed"])
@pytest.mark.parametrize("stream", [False, True])
def test_sequential_requests_reuse_one_upstream_connection(rig: Rig, model: str, stream: bool) -> None:
    """Keep-alive holds on every path, including when the relay stops reading at the answer's last
    item (a new TCP, and for a remote provider TLS, connection per request would cost far more)."""
    up = rig.claude if model == "mixed" else rig.up
    rig.client.chat.completions.create(model=model, messages=MSG, stream=stream)  # type: ignore[call-overload]
    time.sleep(0.2)  # a connection may finish settling in the background
    before = up.connections
    for _ in range(5):
        answer = rig.client.chat.completions.create(model=model, messages=MSG, stream=stream)  # type: ignore[call-overload]
        if stream:
            assert "".join(c.choices[0].delta.content or "" for c in answer if c.choices).startswith("Hello")
        time.sleep(0.05)
    assert up.connections - before <= 1


def test_a_route_named_like_its_upstream_model_forwards_the_clients_bytes(rig: Rig) -> None:
    raw = b'{"model": "m1",  "messages": [{"role": "user", "content": "hi"}], "temperature": 0.25}'
    r = httpx.post(rig.url, content=raw, headers={**auth(), "content-type": "application/json"})
    assert r.status_code == 200 and r.json()["model"] == "m1"
    assert rig.up.seen[-1].raw == raw  # byte for byte: spacing and key order as the client wrote them
    streamed = b'{"model": "m1", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'
    r = httpx.post(rig.url, content=streamed, headers={**auth(), "content-type": "application/json"})
    assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")
    assert rig.up.seen[-1].body == {**json.loads(streamed), "stream_options": {"include_usage": True}}
    assert rig.up.seen[-1].raw.endswith(streamed[1:])  # the client's bytes, one key added in front
    assert '"usage":{' not in r.text.replace(" ", "")  # usage was lumbung's to count, not asked for
