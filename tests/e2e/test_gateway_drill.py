"""`lumbung drill` and `lumbung status` as a user runs them, against fake upstream providers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.fake_upstream import FakeUpstream
from tests.support.server import ServerProcess, free_port

T = {"connect": 1.0, "first_token": 1.0, "idle": 1.0}


@pytest.fixture
def fakes() -> Iterator[dict[str, FakeUpstream]]:
    ups = {name: FakeUpstream(name=name).start() for name in ("a", "b")}
    yield ups
    for up in ups.values():
        up.stop()


def config(fakes: dict[str, FakeUpstream], routes: list[dict[str, object]]) -> dict[str, object]:
    return {
        "serve_default_model": False,
        "providers": [
            {
                "name": "a",
                "kind": "openai",
                "base_url": fakes["a"].base_url,
                "jurisdiction": "ID",
                "timeouts": T,
            },
            {
                "name": "b",
                "kind": "anthropic",
                "base_url": fakes["b"].base_url,
                "jurisdiction": "ID",
                "timeouts": T,
            },
        ],
        "routes": routes,
    }


def lumbung(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lumbung", *args], capture_output=True, text=True, timeout=240, cwd=cwd
    )


def test_drill_passes_a_route_with_a_backup_and_flags_a_single_point_of_failure(
    fakes: dict[str, FakeUpstream], tmp_path: Path
) -> None:
    path = tmp_path / "drill.yaml"
    routes = [{"name": "duo", "tiers": [["a/m1"], ["b/m1"]]}, {"name": "solo", "tiers": [["a/m1"]]}]
    path.write_text(yaml.safe_dump(config(fakes, routes)))
    run = lumbung("drill", "--config", str(path), "--requests", "3", cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("│")]
    cells = [[c.strip() for c in row.strip("│").split("│")] for row in rows]
    duo = [c for c in cells if c[0] == "duo"]
    solo = {c[2]: c for c in cells if c[0] == "solo"}
    assert len(duo) == 1 + 2 * 4 and all(c[4] == "yes" for c in duo)
    assert {c[1] for c in duo} == {"(none)", "a", "b"}
    assert solo["none"][4] == "yes" and solo["slow"][4] == "yes"
    assert [solo[f][3] for f in ("cut_off", "hang", "error_500")] == ["0/3"] * 3
    assert "route 'solo': single point of failure: provider 'a'" in run.stderr
    assert "duo" not in run.stderr.split("single point")[0].splitlines()[-1]
    # The drill's traffic really went through both providers, in both APIs.
    assert any(s.path == "/v1/chat/completions" for s in fakes["a"].seen)
    assert any(s.path == "/v1/messages" for s in fakes["b"].seen)


def test_drill_exits_zero_when_every_route_survives(fakes: dict[str, FakeUpstream], tmp_path: Path) -> None:
    path = tmp_path / "drill.yaml"
    path.write_text(yaml.safe_dump(config(fakes, [{"name": "duo", "tiers": [["a/m1", "b/m1"]]}])))
    run = lumbung("drill", "--config", str(path), "--requests", "2", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "single point of failure" not in run.stderr


def test_status_shows_a_cut_off_provider(
    fakes: dict[str, FakeUpstream], tmp_path: Path, lumbung_home: Path
) -> None:
    import openai

    fakes["a"].set("403_region")
    cfg = config(fakes, [{"name": "duo", "tiers": [["a/m1"], ["b/m1"]]}])
    dead = {
        "name": "dead",
        "kind": "openai",
        "base_url": f"http://127.0.0.1:{free_port()}/v1",
        "jurisdiction": "ID",
    }
    cfg["providers"].append(dead)  # type: ignore[attr-defined]
    server = ServerProcess(lumbung_home, config=cfg, log_dir=tmp_path).start(timeout=60)
    try:
        with openai.OpenAI(base_url=server.base_url + "/v1", api_key="k", max_retries=0) as client:
            done = client.chat.completions.create(model="duo", messages=[{"role": "user", "content": "hi"}])
        assert (done.choices[0].message.content or "").endswith("from b")
        run = lumbung("status", "--url", server.base_url, cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        line_a = next(line for line in run.stdout.splitlines() if line.startswith("│ a "))
        assert "cut_off" in line_a and "a/m1 (closed)" in line_a
        as_json = lumbung("status", "--url", server.base_url, "--json", cwd=tmp_path)
        providers = {p["name"]: p for p in yaml.safe_load(as_json.stdout)["providers"]}
        assert providers["a"]["health"] == "cut_off" and providers["b"]["health"] == "ok"
        assert "reachable" not in providers["a"]
        probed = lumbung("status", "--url", server.base_url, "--json", "--probe", cwd=tmp_path)
        reachable = {p["name"]: p["reachable"] for p in yaml.safe_load(probed.stdout)["providers"]}
        assert reachable == {"a": True, "b": True, "dead": False}
    finally:
        server.stop()


def test_serve_refuses_a_config_that_breaks_the_egress_policy(
    fakes: dict[str, FakeUpstream], tmp_path: Path
) -> None:
    cfg = config(fakes, [{"name": "duo", "tiers": [["a/m1"], ["b/m1"]], "egress": ["SG"]}])
    path = tmp_path / "egress.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    run = lumbung("serve", "--port", "0", "--config", str(path), cwd=tmp_path)
    assert run.returncode != 0
    assert "egress policy: route 'duo' may send data only to ['SG']" in run.stderr
    assert f"{path}:" in run.stderr  # the line of the offending target
    assert not fakes["a"].seen and not fakes["b"].seen


def test_drill_takes_the_local_engine_away_too(
    fakes: dict[str, FakeUpstream], tmp_path: Path, lumbung_home: Path
) -> None:
    """A route that falls back to the embedded model: the drill answers from it while the remote
    provider is away, and takes the local engine away in turn."""
    cfg = config(fakes, [{"name": "mixed", "tiers": [["a/m1"], ["local/default"]]}])
    cfg["serve_default_model"] = True
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "lumbung",
            "drill",
            "--config",
            str(path),
            "--requests",
            "2",
            "--max-tokens",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=tmp_path,
        env={**os.environ, "LUMBUNG_HOME": str(lumbung_home)},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    rows = [
        [c.strip() for c in line.strip("│").split("│")]
        for line in run.stdout.splitlines()
        if line.startswith("│")
    ]
    assert {(r[1], r[2]) for r in rows} >= {("a", "hang"), ("local", "cut_off"), ("local", "slow")}
    assert all(r[4] == "yes" for r in rows)


def test_drill_takes_a_whole_vllm_fleet_away(fakes: dict[str, FakeUpstream], tmp_path: Path) -> None:
    """A `kind: vllm` provider is drilled as one: every replica faulted at once (their /metrics and
    /health too); a route with a backup survives it, a route on the fleet alone is flagged."""
    replicas = [FakeUpstream(name=f"r{i}").start() for i in range(2)]
    try:
        cfg = config(
            fakes,
            [{"name": "fleet", "tiers": [["gpu/m1"], ["b/m1"]]}, {"name": "alone", "tiers": [["gpu/m1"]]}],
        )
        fleet = {"scrape_interval": 0.2, "scrape_timeout": 0.5, "stale_after": 1.0}
        gpu = {
            "name": "gpu",
            "kind": "vllm",
            "replicas": [r.base_url for r in replicas],
            "jurisdiction": "ID",
        }
        cfg["providers"].append({**gpu, "timeouts": T, "fleet": fleet})  # type: ignore[attr-defined]
        path = tmp_path / "drill.yaml"
        path.write_text(yaml.safe_dump(cfg))
        run = lumbung("drill", "--config", str(path), "--requests", "2", cwd=tmp_path)
        assert run.returncode == 1, run.stdout + run.stderr
        rows = [
            [c.strip() for c in line.strip("│").split("│")]
            for line in run.stdout.splitlines()
            if line.startswith("│")
        ]
        assert all(c[4] == "yes" for c in rows if c[0] == "fleet")
        assert {c[1] for c in rows if c[0] == "fleet"} == {"(none)", "gpu", "b"}
        assert "route 'alone': single point of failure: provider 'gpu'" in run.stderr
        assert all(any(s.path == "/v1/chat/completions" for s in r.seen) for r in replicas)
        assert all(any(s.path == "/metrics" for s in r.seen) for r in replicas)
    finally:
        for r in replicas:
            r.stop()
