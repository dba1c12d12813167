"""Two real `lumbung serve` processes over one real redis-server, as two instances behind a load
balancer: one virtual key's limit counted once across both, and a provider's region block found by one
known to the other before it sends the provider anything, through the OpenAI SDK over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream("up", words=3).start()
    yield fake
    fake.stop()


@pytest.fixture
def backup() -> Iterator[FakeUpstream]:
    fake = FakeUpstream("backup", words=3).start()
    yield fake
    fake.stop()


def instances_config(upstream: FakeUpstream, redis_url: str, **more: Any) -> dict[str, Any]:
    return {
        "serve_default_model": False,
        "redis_url": redis_url,
        "providers": [{"name": "up", "kind": "openai", "base_url": upstream.base_url, "jurisdiction": "ID"}],
        "routes": [{"name": "r", "tiers": [["up/m"]]}],
        **more,
    }


@pytest.fixture
def two_instances(tmp_path: Path) -> Iterator[Any]:
    """Two servers over one data directory (one key store, as two machines over one PostgreSQL)."""
    started: list[ServerProcess] = []

    def start(config: dict[str, Any]) -> tuple[ServerProcess, ServerProcess]:
        for _ in range(2):
            started.append(ServerProcess(tmp_path, config=config).start())
        return started[0], started[1]

    yield start
    for server in started:
        server.stop()


def create_key(home: Path, *options: str) -> str:
    """``lumbung keys create`` as an operator runs it: the new key's secret."""
    env = {**os.environ, "LUMBUNG_HOME": str(home)}
    env.pop("LUMBUNG_CONFIG", None)
    command = [sys.executable, "-m", "lumbung", "keys", "create", *options, "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=True)
    return str(json.loads(done.stdout)["key"])


def test_two_instances_share_one_virtual_keys_requests_per_minute(
    tmp_path: Path, upstream: FakeUpstream, redis_server: RedisServer, two_instances: Any
) -> None:
    secret = create_key(tmp_path, "--name", "app", "--rpm", "2")
    config = instances_config(upstream, redis_server.url, admin_api_keys=["sk-operator"])
    a, b = two_instances(config)
    clients = [openai.OpenAI(base_url=s.base_url + "/v1", api_key=secret, max_retries=0) for s in (a, b)]
    messages: list[Any] = [{"role": "user", "content": "hi"}]
    try:
        remaining = []
        for client in clients:
            raw = client.chat.completions.with_raw_response.create(model="r", messages=messages)
            assert raw.parse().choices[0].message.content
            remaining.append(raw.headers["x-ratelimit-remaining-requests"])
        assert remaining == ["1", "0"]  # the second instance counted the first one's request
        for client in clients:
            with pytest.raises(openai.RateLimitError) as refused:
                client.chat.completions.create(model="r", messages=messages)
            headers = refused.value.response.headers
            assert headers["x-ratelimit-limit-requests"] == "2"
            assert headers["x-ratelimit-remaining-requests"] == "0"
            assert int(headers["retry-after"]) >= 1
    finally:
        for client in clients:
            client.close()
    assert len(upstream.seen) == 2


def test_a_region_block_found_by_one_instance_reaches_the_other(
    upstream: FakeUpstream, backup: FakeUpstream, redis_server: RedisServer, two_instances: Any
) -> None:
    config = instances_config(upstream, redis_server.url)
    config["providers"].append(
        {"name": "backup", "kind": "openai", "base_url": backup.base_url, "jurisdiction": "ID"}
    )
    config["routes"] = [{"name": "r", "tiers": [["up/m"], ["backup/m"]]}]
    a, b = two_instances(config)
    upstream.set("403_region")
    clients = [openai.OpenAI(base_url=s.base_url + "/v1", api_key="none", max_retries=0) for s in (a, b)]
    messages: list[Any] = [{"role": "user", "content": "hi"}]
    try:
        answer = clients[0].chat.completions.create(model="r", messages=messages)
        assert "backup" in (answer.choices[0].message.content or "")  # moved on past the block
        assert len(upstream.seen) == 1
        # The other instance, which sent nothing, now shows the provider cut off ...
        deadline = time.monotonic() + 30
        while provider_health(b, "up") != "cut_off":
            assert time.monotonic() < deadline, "the other instance never learned of the cut-off"
            time.sleep(0.02)
        # ... and sends its requests past it without trying it.
        upstream.set("ok")
        answer = clients[1].chat.completions.create(model="r", messages=messages)
        assert "backup" in (answer.choices[0].message.content or "")
        assert len(upstream.seen) == 1
    finally:
        for client in clients:
            client.close()


def provider_health(server: ServerProcess, name: str) -> str:
    status = httpx.get(server.base_url + "/admin/providers", timeout=10).json()
    return str(next(p for p in status["providers"] if p["name"] == name)["health"])
