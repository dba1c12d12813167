"""Recording and shadowing in a real `lumbung serve` over real HTTP, driven by the openai SDK: traffic
to a fake cloud upstream is recorded (whole, streamed, tool calls) and mirrored to a candidate; on
shutdown the queued exchanges are written, and `lumbung recordings` reads them back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from lumbung.proof.exchange import read_exchanges, recording_path
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import ServerProcess

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def upstreams() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    cloud, candidate = FakeUpstream("cloud", words=4).start(), FakeUpstream("candidate", words=3).start()
    yield cloud, candidate
    cloud.stop()
    candidate.stop()


def test_the_openai_sdk_s_traffic_is_recorded_and_shadowed(
    tmp_path: Path, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    cloud, candidate = upstreams
    config = {
        "serve_default_model": False,
        "providers": [
            {"name": "cloud", "kind": "openai", "base_url": cloud.base_url, "jurisdiction": "ID"},
            {"name": "cand", "kind": "openai", "base_url": candidate.base_url, "jurisdiction": "ID"},
        ],
        "routes": [
            {
                "name": "gpt-4o-mini",
                "tiers": [["cloud/gpt-4o-mini"]],
                "egress": ["ID"],
                "record": {"rate": 1.0},
                "shadow": {"target": "candidate", "fraction": 1.0},
            },
            {"name": "candidate", "tiers": [["cand/open-model"]]},
        ],
        "recording": {"redact": {"patterns": [r"secret-\d+"]}},
    }
    server = ServerProcess(tmp_path, config=config, env={"LUMBUNG_HOME": str(tmp_path)}).start()
    try:
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="none")
        messages = [{"role": "user", "content": "Weather in Jakarta? my id is secret-42"}]
        whole = client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
        assert whole.choices[0].message.content == "Hello w1 w2 from cloud"
        streamed = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)  # type: ignore[arg-type]
        text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        assert text == "Hello w1 w2 from cloud"
        tools = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,  # type: ignore[arg-type]
            tools=TOOLS,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces = [c.choices[0].delta.tool_calls for c in tools if c.choices and c.choices[0].delta.tool_calls]
        assert pieces and pieces[0][0].function.name == "weather"  # type: ignore[index,union-attr]
    finally:
        server.stop()  # shutdown writes what is queued

    recorded = list(read_exchanges(recording_path(tmp_path, "gpt-4o-mini")))
    assert [e.stream for e in recorded] == [False, True, True]
    assert recorded[0].response["choices"][0]["message"]["content"] == "Hello w1 w2 from cloud"  # type: ignore[index]
    call = recorded[2].response["choices"][0]["message"]["tool_calls"][0]  # type: ignore[index]
    assert json.loads(call["function"]["arguments"]) == {"city": "Jakarta", "days": 3}
    assert all(e.provider == "cloud/gpt-4o-mini" and e.ttft_ms is not None for e in recorded)
    assert recorded[0].request["messages"][0]["content"] == "Weather in Jakarta? my id is [REDACTED]"

    pairs = list(read_exchanges(recording_path(tmp_path, "shadow-gpt-4o-mini")))
    live = {e.id: e for e in pairs if e.role == "shadow-live"}
    shadow = {e.id: e for e in pairs if e.role == "shadow-candidate"}
    assert sorted(live) == sorted(shadow) == sorted(e.id for e in recorded)
    assert {e.provider for e in shadow.values()} == {"cand/open-model"}
    for rid, exchange in live.items():
        message = shadow[rid].response["choices"][0]["message"]  # type: ignore[index]
        if exchange.request.get("tools"):
            assert message["tool_calls"][0]["function"]["name"] == "weather"
        else:
            assert message["content"] == "Hello w1 from candidate"
    for path in tmp_path.rglob("*.jsonl"):
        assert b"secret-42" not in path.read_bytes()

    listed = subprocess.run(
        [sys.executable, "-m", "lumbung", "recordings", "list", "--json"],
        env={**os.environ, "LUMBUNG_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    names = {r["name"]: r["exchanges"] for r in json.loads(listed.stdout)}
    assert names == {"gpt-4o-mini": 3, "shadow-gpt-4o-mini": 6}


def test_a_key_created_with_record_has_its_requests_recorded(
    tmp_path: Path, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    cloud, _ = upstreams
    config = {
        "serve_default_model": False,
        "api_keys": ["operator-key"],
        "providers": [{"name": "cloud", "kind": "openai", "base_url": cloud.base_url, "jurisdiction": "ID"}],
        "routes": [{"name": "gpt-4o-mini", "tiers": [["cloud/gpt-4o-mini"]]}],
    }
    env = {**os.environ, "LUMBUNG_HOME": str(tmp_path)}
    env.pop("LUMBUNG_CONFIG", None)
    created = subprocess.run(
        [sys.executable, "-m", "lumbung", "keys", "create", "--name", "ci", "--record", "1", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    made = json.loads(created.stdout)
    server = ServerProcess(tmp_path, config=config, env={"LUMBUNG_HOME": str(tmp_path)}).start()
    try:
        messages = [{"role": "user", "content": "hello"}]
        for key in (made["key"], "operator-key"):
            client = openai.OpenAI(base_url=server.base_url + "/v1", api_key=key)
            answer = client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
            assert answer.choices[0].message.content == "Hello w1 w2 from cloud"
    finally:
        server.stop()
    (exchange,) = read_exchanges(recording_path(tmp_path, "key-ci"))
    assert exchange.key == made["id"] and exchange.provider == "cloud/gpt-4o-mini"
    assert exchange.request["messages"] == messages
    assert not recording_path(tmp_path, "gpt-4o-mini").exists()
    for path in tmp_path.rglob("*.jsonl"):
        assert made["key"].encode() not in path.read_bytes()
