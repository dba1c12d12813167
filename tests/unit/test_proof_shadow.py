"""Shadow traffic in process: live requests to a fake cloud upstream mirrored to a candidate in the
background, both answers recorded under one id; the client's answer untouched when the candidate
hangs (the lane's queue sheds, counted in /metrics); no copy sent where the route's egress forbids."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lumbung.cli import main
from lumbung.errors import ConfigError
from lumbung.proof.exchange import Exchange, read_exchanges, recording_path
from lumbung.proof.tap import ProofTap
from lumbung.settings import load_settings
from tests.support.fake_backend import FakeBackend, Hang, Say
from tests.support.fake_upstream import FakeUpstream
from tests.support.inprocess import MODEL, InProcess, in_process, route


@pytest.fixture
async def cloud() -> AsyncIterator[FakeUpstream]:
    up = FakeUpstream("cloud", words=4)
    server = await up.serve()
    yield up
    server.close()
    await server.wait_closed()


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition()`` holds (a state to reach, never a duration)."""
    for _ in range(100_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition was never reached")


def tap_of(lb: InProcess) -> ProofTap:
    tap = lb.gateway.tap
    assert isinstance(tap, ProofTap) and tap.shadows is not None
    return tap


async def settle(lb: InProcess) -> list[Exchange]:
    tap = tap_of(lb)
    await tap.shadows.idle()  # type: ignore[union-attr]
    tap.recorder.flush()
    path = recording_path(lb.settings.home, "shadow-gpt")
    return list(read_exchanges(path)) if path.exists() else []


def chat(stream: bool, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt", "messages": [{"role": "user", "content": "Say hello"}], "stream": stream, **extra}


@pytest.mark.parametrize("passthrough", [True, False])
async def test_both_answers_are_recorded_under_the_live_request_s_id(
    tmp_path: Path, cloud: FakeUpstream, passthrough: bool
) -> None:
    local = FakeBackend("local", [MODEL], default=Say(("Hi", " from", " local")))
    shadow = {"target": MODEL, "fraction": 1.0}
    routes = [route("gpt", ["cloud"], shadow=shadow, passthrough=passthrough)]
    async with in_process(tmp_path, local=local, providers={"cloud": cloud.base_url}, routes=routes) as lb:
        ids = []
        for stream in (False, True, False, True):
            response = await lb.client.post("/v1/chat/completions", json=chat(stream))
            assert response.status_code == 200
            assert "from cloud" in response.text and "local" not in response.text
            ids.append(response.headers["x-request-id"])
        exchanges = await settle(lb)
        metrics = (await lb.client.get("/metrics")).text
    live = {e.id: e for e in exchanges if e.role == "shadow-live"}
    candidate = {e.id: e for e in exchanges if e.role == "shadow-candidate"}
    assert sorted(live) == sorted(candidate) == sorted(ids)
    for rid in ids:
        assert live[rid].provider == "cloud/m" and live[rid].extra["candidate"] == MODEL
        assert live[rid].response["choices"][0]["message"]["content"] == "Hello w1 w2 from cloud"  # type: ignore[index]
        assert candidate[rid].provider == f"local/{MODEL}" and candidate[rid].route == MODEL
        assert candidate[rid].response["choices"][0]["message"]["content"] == "Hi from local"  # type: ignore[index]
        assert candidate[rid].request == live[rid].request  # the same request, asked the same way
        assert candidate[rid].stream is live[rid].stream
        assert candidate[rid].latency_ms is not None and candidate[rid].ttft_ms is not None
    assert [r.messages[0].content for r in local.requests] == ["Say hello"] * 4  # type: ignore[union-attr]
    assert 'lumbung_shadow_requests_total{outcome="answered",route="gpt"} 4.0' in metrics


async def test_a_hung_candidate_sheds_copies_and_never_touches_the_client(
    tmp_path: Path, cloud: FakeUpstream
) -> None:
    local = FakeBackend("local", [MODEL], default=Hang())
    shadow = {"target": MODEL, "fraction": 1.0, "queue": 2, "concurrency": 1, "timeout": 600}
    routes = [route("gpt", ["cloud"], shadow=shadow)]
    async with in_process(tmp_path, local=local, providers={"cloud": cloud.base_url}, routes=routes) as lb:
        for i in range(10):
            response = await lb.client.post("/v1/chat/completions", json=chat(i % 2 == 0))
            assert response.status_code == 200 and "from cloud" in response.text
            if i == 0:
                await until(lambda: local.hanging == 1)  # the worker holds the first copy
        lane = tap_of(lb).shadows.lanes["gpt"]  # type: ignore[union-attr]
        metrics = (await lb.client.get("/metrics")).text
        assert local.hanging == 1  # the one worker waits on the candidate; the queue holds two more
        assert lane.counts["queued"] == 3 and lane.counts["dropped"] == 7
        assert 'lumbung_shadow_requests_total{outcome="dropped",route="gpt"} 7.0' in metrics
    assert cloud.completed + len(cloud.seen) >= 10


async def test_no_copy_goes_where_the_live_route_s_egress_forbids(
    tmp_path: Path, cloud: FakeUpstream
) -> None:
    abroad = FakeUpstream("abroad", words=3)
    server = await abroad.serve()
    try:
        routes = [route("gpt", ["cloud"], shadow={"target": "us", "fraction": 1.0}), route("us", ["abroad"])]
        async with in_process(
            tmp_path,
            providers={"cloud": cloud.base_url, "abroad": abroad.base_url},
            provider_options={"abroad": {"jurisdiction": "US"}},
            routes=routes,
        ) as lb:
            lb.gateway.resolve("gpt").egress = ["ID"]  # tightened while serving: checked per copy
            for stream in (False, True):
                response = await lb.client.post("/v1/chat/completions", json=chat(stream))
                assert response.status_code == 200 and "from cloud" in response.text
            exchanges = await settle(lb)
            lane = tap_of(lb).shadows.lanes["gpt"]  # type: ignore[union-attr]
        assert lane.counts["egress_denied"] == 2
        assert abroad.seen == []
        assert [e.role for e in exchanges] == ["shadow-live", "shadow-live"]
    finally:
        server.close()
        await server.wait_closed()


def test_a_shadow_target_outside_the_route_s_egress_is_refused_at_start_up(tmp_path: Path) -> None:
    config = {
        "home": str(tmp_path),
        "serve_default_model": False,
        "providers": [
            {"name": "id", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "jurisdiction": "ID"},
            {"name": "us", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "jurisdiction": "US"},
        ],
        "routes": [
            {"name": "gpt", "tiers": [["id/m"]], "egress": ["ID"], "shadow": {"target": "cand"}},
            {"name": "cand", "tiers": [["us/m"]]},
        ],
    }
    path = tmp_path / "lumbung.yaml"
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    message = str(info.value)
    assert "routes.0.shadow.target" in message and "'us/m' in jurisdiction 'US'" in message


async def test_a_shadow_target_the_server_does_not_serve_is_refused_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="shadow target 'nothing' is no route or model"):
        async with in_process(
            tmp_path,
            providers={"a": "http://127.0.0.1:9/v1"},
            routes=[route("gpt", ["a"], shadow={"target": "nothing"})],
        ):
            pass


async def test_lumbung_shadow_report_reads_the_pairs(tmp_path: Path, cloud: FakeUpstream) -> None:
    same = FakeBackend("local", [MODEL], default=Say(("Hello", " w1 w2", " from cloud")))  # the live words
    routes = [route("gpt", ["cloud"], shadow={"target": MODEL, "fraction": 1.0})]
    async with in_process(tmp_path, local=same, providers={"cloud": cloud.base_url}, routes=routes) as lb:
        for stream in (False, True, False):
            assert (await lb.client.post("/v1/chat/completions", json=chat(stream))).status_code == 200
        await settle(lb)
    out = tmp_path / "report.json"
    args = ["shadow", "report", "gpt", "--embedding-model", "none", "--report", str(out)]
    env = {"LUMBUNG_HOME": str(tmp_path), "LUMBUNG_CONFIG": ""}
    result = await asyncio.to_thread(CliRunner().invoke, main, args, env=env)  # it runs a loop of its own
    assert result.exit_code == 0, result.output
    assert "shadow report of gpt: 3 requests, 0 failed" in result.output
    assert "exact_match             100.0%  (3/3)" in result.output
