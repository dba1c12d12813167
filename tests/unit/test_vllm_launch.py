"""Supervising `vllm serve` processes (``launch:``) with a stand-in for vllm (tests/support/
fake_vllm_serve.py, a real process on 127.0.0.1 that serves /health and /metrics and crashes on
purpose): arguments passed through, logs kept, health checks, restarts with exponential backoff on a
fake clock, a stop at shutdown; and a gateway that launches its replicas and serves through them."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from lumbung.clock import FakeClock
from lumbung.config import LaunchConfig, ProviderConfig
from lumbung.engines.vllm import Fleet
from lumbung.engines.vllm_launch import Launcher, Phase, Supervised
from lumbung.gateway.build import build_gateway
from lumbung.settings import Settings
from lumbung.surfaces.http import create_app
from tests.support.asgi import StreamingTransport, lifespan
from tests.support.fake_backend import FakeBackend

ROOT = Path(__file__).resolve().parents[2]
STAND_IN = [sys.executable, "-m", "tests.support.fake_vllm_serve"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(condition: Callable[[], object], what: str) -> None:
    """Wait for a state of a real process (polled; no duration is asserted)."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never reached: {what}")


def config(**options: Any) -> LaunchConfig:
    base: dict[str, Any] = {
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "port": free_port(),
        "command": STAND_IN,
        "env": {"PYTHONPATH": str(ROOT)},
        "health_interval": 1.0,
        "backoff": {"initial": 1.0, "max": 4.0, "reset_after": 30.0},
        "stop_timeout": 10.0,
    }
    return LaunchConfig.model_validate({**base, **options})


async def get(port: int, path: str) -> None:
    def call() -> None:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).read()

    await asyncio.to_thread(call)


class Driver:
    def __init__(self, process: Supervised, clock: FakeClock) -> None:
        self.p, self.clock = process, clock

    async def check(self) -> None:
        """One health check: the clock moves one interval and the check completes."""
        await until(lambda: self.p.ticking or self.p.phase is Phase.BACKOFF, "waiting for the next check")
        if self.p.phase is Phase.BACKOFF:
            return
        before = self.p.checks
        self.clock.advance(self.p.config.health_interval)
        await until(lambda: self.p.checks > before or self.p.phase is Phase.BACKOFF, "a health check")

    async def healthy(self) -> None:
        for _ in range(500):
            if self.p.phase is Phase.HEALTHY:
                return
            await self.check()
        raise AssertionError("never healthy")

    async def restart(self) -> None:
        """Ends the backoff pause it is in."""
        assert self.p.phase is Phase.BACKOFF and self.p.next_pause is not None
        starts = self.p.starts
        self.clock.advance(self.p.next_pause)
        await until(lambda: self.p.starts > starts, "a restart")


@contextlib.asynccontextmanager
async def supervised(tmp_path: Path, cfg: LaunchConfig) -> AsyncIterator[tuple[Supervised, Driver]]:
    clock = FakeClock()
    launcher = Launcher.of("gpu", cfg, tmp_path, clock)
    launcher.start()
    try:
        yield launcher.processes[0], Driver(launcher.processes[0], clock)
    finally:
        await launcher.aclose()


async def test_arguments_pass_through_and_the_log_is_kept(tmp_path: Path) -> None:
    cfg = config(
        replicas=2,
        tensor_parallel_size=2,
        gpu_memory_utilization=0.5,
        gpus=["0,1", "2,3"],
        args=["--max-model-len", "8192"],
    )
    clock = FakeClock()
    launcher = Launcher.of("gpu", cfg, tmp_path, clock)
    launcher.start()
    try:
        for process in launcher.processes:
            await Driver(process, clock).healthy()
    finally:
        await launcher.aclose()
    assert all(p.process is not None and p.process.returncode is not None for p in launcher.processes)
    second = (tmp_path / "logs" / "vllm" / "gpu-1.log").read_text()
    assert f"port={cfg.port + 1} tp=2 gpu_memory_utilization=0.5" in second
    assert "rest=['--max-model-len', '8192']" in second
    assert "CUDA_VISIBLE_DEVICES=2,3" in second
    assert "--- lumbung: start 1: " in second


async def test_a_crash_restarts_it_after_a_pause_that_doubles(tmp_path: Path) -> None:
    cfg = config()
    async with supervised(tmp_path, cfg) as (p, drive):
        await drive.healthy()
        for pause in (1.0, 2.0, 4.0, 4.0):  # doubling, at most backoff.max
            await get(cfg.port, "/crash")
            await until(lambda: p.phase is Phase.BACKOFF, "noticing the crash")
            assert p.next_pause == pause
            await drive.restart()
            await drive.healthy()
        assert p.exit_codes == [1, 1, 1, 1]
        assert p.restarts == 4
        # Healthy long enough: the next crash counts as the first again.
        for _ in range(31):
            await drive.check()
        await get(cfg.port, "/crash")
        await until(lambda: p.phase is Phase.BACKOFF, "noticing the crash")
        assert p.next_pause == 1.0
    log = (tmp_path / "logs" / "vllm" / "gpu-0.log").read_text()
    assert log.count("crashing on purpose") == 5
    assert "--- lumbung: exited with 1; restart in 2s" in log


async def test_a_process_that_ends_at_start_is_retried_with_backoff(tmp_path: Path) -> None:
    cfg = config(env={"PYTHONPATH": str(ROOT), "FAKE_VLLM_EXIT": "3"})
    async with supervised(tmp_path, cfg) as (p, drive):
        pauses = []
        for _ in range(3):
            await until(lambda: p.phase is Phase.BACKOFF, "the end")
            pauses.append(p.next_pause)
            await drive.restart()
        assert pauses == [1.0, 2.0, 4.0]
        await until(lambda: len(p.exit_codes) == 4, "the fourth end")
        assert p.exit_codes == [3, 3, 3, 3]


async def test_failing_health_checks_restart_it(tmp_path: Path) -> None:
    cfg = config(unhealthy_after=2)
    async with supervised(tmp_path, cfg) as (p, drive):
        await drive.healthy()
        await get(cfg.port, "/sick")  # /health now answers 503
        await drive.check()
        assert p.phase is Phase.UNHEALTHY
        await drive.check()
        await until(lambda: p.phase is Phase.BACKOFF, "the stop")
        assert p.exit_codes and p.exit_codes[-1] != 0  # SIGTERM ended it
        await drive.restart()
        await drive.healthy()  # the new process is healthy again


async def test_a_process_that_never_gets_healthy_is_restarted_after_the_startup_timeout(
    tmp_path: Path,
) -> None:
    cfg = config(startup_timeout=3.0, env={"PYTHONPATH": str(ROOT), "FAKE_VLLM_SICK": "1"})
    async with supervised(tmp_path, cfg) as (p, drive):
        await until(lambda: p.phase is not Phase.STOPPED, "the start")
        for _ in range(10):
            if p.phase is Phase.BACKOFF:
                break
            assert p.phase is Phase.STARTING
            await drive.check()
        await until(lambda: p.phase is Phase.BACKOFF, "the stop")
        assert p.exit_codes and p.exit_codes[-1] != 0
        await drive.restart()
        assert p.phase is Phase.STARTING


async def test_a_gateway_launches_its_replicas_and_serves_through_them(tmp_path: Path) -> None:
    cfg = config(replicas=2)
    clock = FakeClock()
    provider = ProviderConfig.model_validate(
        {"name": "gpu", "kind": "vllm", "launch": cfg.model_dump(), "fleet": {"scrape_interval": 1.0}}
    )
    assert provider.replica_urls == [f"http://127.0.0.1:{cfg.port + i}/v1" for i in range(2)]
    settings = Settings(
        home=tmp_path,
        serve_default_model=False,
        providers=[provider],
        routes=[{"name": "r", "tiers": [["gpu/m"]]}],
    )

    gateway = build_gateway(settings, FakeBackend("local", ["fake-model"]), environ={}, clock=clock)
    launcher = next(w for w in gateway.watchers if isinstance(w, Launcher))
    assert gateway.status()["providers"][0]["jurisdiction"] == "local"
    app = create_app(settings, gateway)
    fleet = next(w for w in gateway.watchers if isinstance(w, Fleet))

    async with (
        lifespan(app),
        httpx.AsyncClient(transport=StreamingTransport(app), base_url="http://t") as client,
    ):
        for process in launcher.processes:
            await Driver(process, clock).healthy()
        passes = fleet.passes
        clock.advance(1.0)  # the fleet reads the replicas once more, now that they answer
        await until(lambda: fleet.passes > passes, "a read of the fleet")
        assert all(r.load is not None for r in fleet.replicas)
        answers = []
        for _ in range(4):
            response = await client.post(
                "/v1/chat/completions", json={"model": "r", "messages": [{"role": "user", "content": "hi"}]}
            )
            assert response.status_code == 200, response.text
            answers.append(response.json()["choices"][0]["message"]["content"])
        assert {a.rsplit(" ", 1)[-1] for a in answers} <= {f"vllm-{cfg.port}", f"vllm-{cfg.port + 1}"}
    assert all(p.process is not None and p.process.returncode is not None for p in launcher.processes)


def test_launch_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="device sets"):
        LaunchConfig(model="m", replicas=2, gpus=["0"])
    with pytest.raises(ValueError, match="65535"):
        LaunchConfig(model="m", replicas=3, port=65534)
    argv = LaunchConfig(model="m", port=9000, args=["--enable-prefix-caching"]).argv(1)
    assert argv == [
        "vllm", "serve", "m", "--host", "127.0.0.1", "--port", "9001", "--tensor-parallel-size", "1",
        "--gpu-memory-utilization", "0.9", "--enable-prefix-caching",
    ]  # fmt: skip
