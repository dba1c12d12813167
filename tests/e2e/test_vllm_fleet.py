"""A `lumbung serve` process over a vLLM fleet of fake replicas on 127.0.0.1, driven by the OpenAI and
Anthropic SDKs: traffic spreads over the replicas, a draining replica gets none while it drains and
work again once healthy, and `lumbung status` and `/metrics` show each replica."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.server import ServerProcess


@pytest.fixture
def replicas() -> Iterator[list[FakeUpstream]]:
    fakes = [FakeUpstream(name=f"r{i}", words=4).start() for i in range(2)]
    yield fakes
    for fake in fakes:
        fake.stop()


def chats(fake: FakeUpstream) -> int:
    return sum(s.path.endswith(("/chat/completions", "/completions")) for s in fake.seen)


def wait_for_reads(fakes: list[FakeUpstream], reads: int = 2) -> None:
    """Until the fleet has read every replica's /metrics ``reads`` more times (a state, polled)."""
    goal = [f.metrics_reads + reads for f in fakes]
    for _ in range(600):
        if all(f.metrics_reads >= g for f, g in zip(fakes, goal, strict=True)):
            return
        time.sleep(0.05)
    raise AssertionError("the fleet stopped reading its replicas")


def test_a_fleet_behind_lumbung_serve(
    replicas: list[FakeUpstream], tmp_path: Path, lumbung_home: Path
) -> None:
    a, b = replicas
    config = {
        "serve_default_model": False,
        "providers": [
            {
                "name": "gpu",
                "kind": "vllm",
                "replicas": [a.base_url, b.base_url],
                "jurisdiction": "ID",
                "fleet": {"scrape_interval": 0.1, "stale_after": 2.0},
            }
        ],
        "routes": [{"name": "qwen", "tiers": [["gpu/Qwen/Qwen2.5-7B-Instruct"]]}],
    }
    server = ServerProcess(lumbung_home, config=config, log_dir=tmp_path).start(timeout=60)
    try:
        with openai.OpenAI(base_url=server.base_url + "/v1", api_key="k", max_retries=0) as client:
            wait_for_reads(replicas)
            for _ in range(6):
                done = client.chat.completions.create(
                    model="qwen", messages=[{"role": "user", "content": "hi"}]
                )
                assert done.model == "qwen"
            assert chats(a) + chats(b) == 6
            a.health_status = 503  # vLLM draining
            wait_for_reads(replicas)
            before = chats(a)
            for _ in range(4):
                stream = client.chat.completions.create(
                    model="qwen", messages=[{"role": "user", "content": "hi"}], stream=True
                )
                assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices).endswith(
                    "from r1"
                )
            with anthropic.Anthropic(base_url=server.base_url, api_key="k", max_retries=0) as claude:
                message = claude.messages.create(
                    model="qwen", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
                )
                assert message.content[0].text.endswith("from r1")  # type: ignore[union-attr]
            assert chats(a) == before
            status = subprocess.run(
                [sys.executable, "-m", "lumbung", "status", "--url", server.base_url],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=tmp_path,
            )
            assert status.returncode == 0, status.stderr
            row = next(line for line in status.stdout.splitlines() if line.startswith("│ gpu[0]"))
            assert "draining" in row, status.stdout
            metrics = httpx.get(server.base_url + "/metrics").text
            assert 'lumbung_vllm_replica_accepting{provider="gpu[0]"} 0.0' in metrics
            a.health_status = 200
            wait_for_reads(replicas)
            for _ in range(4):
                client.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "hi"}])
            assert chats(a) > before  # back in the rotation
    finally:
        server.stop()
