"""scripts/gpu-check's measuring half (bench/vllm_overhead.py) run on CPU against a fake vLLM
replica behind a real `lumbung serve`: it measures both paths, runs every conformance check through
lumbung and reports each, a failed one (the fake writes no JSON for a schema) by name. The GPU run
itself needs a GPU (docs/deploy.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.server import ServerProcess

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def replica() -> Iterator[FakeUpstream]:
    fake = FakeUpstream(name="vllm", words=4, agent_tool="get_weather", agent_arguments={"city": "Jakarta"})
    fake.start()
    yield fake
    fake.stop()


def test_the_gpu_check_measures_and_checks_through_lumbung(
    replica: FakeUpstream, tmp_path: Path, lumbung_home: Path
) -> None:
    model = "Qwen/Qwen2.5-0.5B-Instruct"
    config = {
        "serve_default_model": False,
        "providers": [
            {"name": "gpu", "kind": "vllm", "replicas": [replica.base_url], "jurisdiction": "local"}
        ],
        "routes": [{"name": model, "tiers": [[f"gpu/{model}"]]}],
    }
    server = ServerProcess(lumbung_home, config=config, log_dir=tmp_path).start(timeout=60)
    out = tmp_path / "result.json"
    try:
        direct = replica.base_url.removesuffix("/v1")
        run = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "vllm_overhead.py"), "--direct", direct,
             "--lumbung", server.base_url, "--model", model, "--quick", "--json", str(out)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        server.stop()
    assert run.returncode == 1, run.stdout + run.stderr  # the schema check fails on the fake: FAIL
    result = json.loads(out.read_text())
    assert result["tokens_per_second"]["direct"] > 0 and result["tokens_per_second"]["lumbung"] > 0
    assert result["latency"]["lumbung_p50_ms"] > 0
    checks = result["conformance"]
    schema = checks.pop("openai json_schema (strict)")
    assert isinstance(schema, str) and schema.startswith("failed")
    assert checks == dict.fromkeys(checks, True), checks
    assert len(checks) == 6
    assert "FAIL" in run.stdout and "conformance anthropic messages: ok" in run.stdout
