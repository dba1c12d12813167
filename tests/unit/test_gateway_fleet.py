"""A `kind: vllm` provider in process: replicas are fake vLLM servers on 127.0.0.1 (OpenAI API, /health,
Prometheus /metrics with vLLM's names), read by the fleet's own watch loop on a fake clock, and the
gateway's picks follow what they say: least outstanding, a prefix kept home until its share is passed,
queue and KV pressure, draining, down, asleep, and metrics too old to trust."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lumbung.cli_gateway import target_cell
from lumbung.clock import FakeClock
from lumbung.engines.vllm import Fleet
from tests.support.fake_upstream import FakeUpstream
from tests.support.inprocess import InProcess, in_process, route


async def until(condition: Callable[[], object]) -> None:
    """Let the loop run until ``condition()`` holds (a state to reach, never a duration)."""
    for _ in range(200_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition was never reached")


@pytest.fixture
async def replicas() -> AsyncIterator[list[FakeUpstream]]:
    fakes = [FakeUpstream(f"r{i}", words=4) for i in range(3)]
    servers = [await f.serve() for f in fakes]
    yield fakes
    for server in servers:
        server.close()
        await server.wait_closed()


class Fleetside:
    """The app over a vLLM provider named ``gpu`` on the given fakes, and ways to drive its clock."""

    def __init__(self, lb: InProcess, clock: FakeClock, fakes: list[FakeUpstream]) -> None:
        self.lb, self.clock, self.fakes = lb, clock, fakes
        self.fleet = cast(Fleet, lb.gateway.watchers[0])
        self.stack = contextlib.AsyncExitStack()

    async def read_again(self) -> None:
        """One more pass of the fleet's watch loop: the clock moves one interval and every replica
        is read."""
        before = self.fleet.passes
        self.clock.advance(self.fleet.config.scrape_interval)
        await until(lambda: self.fleet.passes > before)

    def body(self, prompt: str = "hi", stream: bool = True) -> dict[str, Any]:
        return {"model": "r", "messages": [{"role": "user", "content": prompt}], "stream": stream}

    async def hold(self, prompt: str = "hi") -> None:
        """A streamed answer whose first content reached the client, kept open (in flight)."""
        response = await self.stack.enter_async_context(
            self.lb.client.stream("POST", "/v1/chat/completions", json=self.body(prompt))
        )
        assert response.status_code == 200
        async for _ in response.aiter_bytes():
            break

    async def ask(self, prompt: str = "hi") -> int:
        response = await self.lb.client.post("/v1/chat/completions", json=self.body(prompt, stream=False))
        return response.status_code

    def served(self) -> list[int]:
        """Chat requests each replica has received."""
        return [sum(s.path.endswith("/chat/completions") for s in f.seen) for f in self.fakes]


@contextlib.asynccontextmanager
async def fleet(
    tmp_path: Path, fakes: list[FakeUpstream], *, fleet: dict[str, Any] | None = None, **route_options: Any
) -> AsyncIterator[Fleetside]:
    clock = FakeClock()
    for fake in fakes:
        fake.set("stall_after", k=1)  # streams stay open after their first content: in flight
    options = {"kind": "vllm", "replicas": [f.base_url for f in fakes], "fleet": fleet or {}}
    async with in_process(
        tmp_path,
        providers={"gpu": fakes[0].base_url},
        provider_options={"gpu": options},
        routes=[route("r", ["gpu"], **route_options)],
        clock=clock,
    ) as lb:
        side = Fleetside(lb, clock, fakes)
        await until(lambda: side.fleet.passes)  # the loop's first read
        async with side.stack:
            yield side


async def test_traffic_follows_least_outstanding(tmp_path: Path, replicas: list[FakeUpstream]) -> None:
    async with fleet(tmp_path, replicas) as f:
        for _ in range(6):
            await f.hold()
        assert f.served() == [2, 2, 2]


async def test_a_prefix_stays_on_its_replica_until_its_share_is_passed_then_spills(
    tmp_path: Path, replicas: list[FakeUpstream]
) -> None:
    two = replicas[:2]
    async with fleet(tmp_path, two, prefix_affinity=True) as f:
        prompt = "You are a careful assistant. " * 40
        await f.hold(prompt)
        home = f.served().index(1)
        await f.hold(prompt)
        assert f.served()[home] == 2  # its share of 2 in flight: ceil(1.25 * 2 / 2)
        await f.hold(prompt)
        assert f.served()[1 - home] == 1  # past its share: spilled to the prefix's next replica
        await f.hold(prompt)
        assert f.served()[home] == 3  # ceil(1.25 * 4 / 2) = 3: home has room again


async def test_a_long_waiting_queue_gets_no_new_work(tmp_path: Path, replicas: list[FakeUpstream]) -> None:
    a, b = replicas[:2]
    async with fleet(tmp_path, [a, b], fleet={"waiting_limit": 8}) as f:
        a.waiting = 12
        await f.read_again()
        for _ in range(5):
            await f.hold()
        assert f.served() == [0, 5]


async def test_a_nearly_full_kv_cache_gets_no_new_work(tmp_path: Path, replicas: list[FakeUpstream]) -> None:
    a, b = replicas[:2]
    async with fleet(tmp_path, [a, b]) as f:
        a.kv_usage = 0.99
        await f.read_again()
        for _ in range(4):
            assert await f.ask() == 200
        assert f.served() == [0, 4]


async def test_a_short_queue_gets_less_work(tmp_path: Path, replicas: list[FakeUpstream]) -> None:
    a, b = replicas[:2]
    async with fleet(tmp_path, [a, b]) as f:
        a.waiting = 2
        await f.read_again()
        for _ in range(6):
            await f.hold()
        assert f.served()[0] < f.served()[1]
        assert sum(f.served()) == 6


async def test_when_every_replica_is_full_they_still_serve(
    tmp_path: Path, replicas: list[FakeUpstream]
) -> None:
    a, b = replicas[:2]
    async with fleet(tmp_path, [a, b]) as f:
        a.kv_usage = b.kv_usage = 1.0
        await f.read_again()
        assert await f.ask() == 200


async def test_a_draining_replica_gets_none_and_comes_back_when_healthy(
    tmp_path: Path, replicas: list[FakeUpstream]
) -> None:
    a, b = replicas[:2]
    async with fleet(tmp_path, [a, b]) as f:
        a.health_status = 503  # vLLM draining
        await f.read_again()
        for _ in range(4):
            assert await f.ask() == 200
        assert f.served() == [0, 4]
        status = (await f.lb.client.get("/admin/providers")).json()
        shown = {p["name"]: p for p in status["providers"]}
        assert shown["gpu[0]"]["targets"][0]["replica"]["health"] == "draining"
        assert (shown["gpu[0]"]["health"], shown["gpu[1]"]["health"]) == ("draining", "ok")
        cells = [target_cell(shown[f"gpu[{i}]"]["targets"][0]) for i in range(2)]
        assert cells[0].startswith("gpu[0]/m (closed) [draining; running 0, waiting 0")
        assert cells[1].startswith("gpu[1]/m (closed) [ok; running 0, waiting 0; KV 10%")
        a.health_status = 200
        await f.read_again()
        await f.hold()
        await f.hold()
        assert f.served()[0] == 1


async def test_a_sleeping_engine_gets_no_new_work(tmp_path: Path, replicas: list[FakeUpstream]) -> None:
    a, b = replicas[:2]
    async with fleet(tmp_path, [a, b]) as f:
        a.sleeping = True
        await f.read_again()
        for _ in range(3):
            await f.hold()
        assert f.served() == [0, 3]


async def test_a_replica_that_stopped_gets_no_requests_at_all(
    tmp_path: Path, replicas: list[FakeUpstream]
) -> None:
    a, b = replicas[:2]
    async with fleet(tmp_path, [a, b]) as f:
        await a.kill()
        await f.read_again()
        assert f.fleet.replicas[0].health.value == "down"
        for _ in range(3):
            assert await f.ask() == 200
        assert f.served() == [0, 3]
        failures = [t["failures"] for p in f.lb.gateway.status()["providers"] for t in p["targets"]]
        assert failures == [0, 0]  # skipped, not tried and failed


async def test_when_every_replica_drains_the_answer_is_503_naming_it(
    tmp_path: Path, replicas: list[FakeUpstream]
) -> None:
    a, b = replicas[:2]
    async with fleet(tmp_path, [a, b]) as f:
        a.health_status = b.health_status = 503
        await f.read_again()
        response = await f.lb.client.post("/v1/chat/completions", json=f.body(stream=False))
        assert response.status_code == 503
        assert "draining" in response.json()["error"]["message"]
        assert response.headers["retry-after"]
        assert f.served() == [0, 0]


@pytest.mark.parametrize("broken", ["garbage", "foreign", "500"])
async def test_stale_metrics_are_ignored(tmp_path: Path, replicas: list[FakeUpstream], broken: str) -> None:
    a, b = replicas[:2]
    async with fleet(tmp_path, [a, b], fleet={"scrape_interval": 1.0, "stale_after": 3.0}) as f:
        a.waiting = 50
        await f.read_again()
        await f.hold()
        assert f.served() == [0, 1]  # a's queue keeps it out
        a.metrics_mode = broken  # its metrics stop making sense; its last good ones age
        await f.read_again()
        assert f.fleet.replicas[0].scrape_error
        await f.hold()
        assert f.served() == [0, 2]  # the last good read still holds
        for _ in range(3):
            await f.read_again()
        await f.hold()
        await f.hold()
        assert f.served() == [2, 2]  # too old to trust: by requests in flight alone


async def test_metrics_that_hang_time_out_and_age(tmp_path: Path, replicas: list[FakeUpstream]) -> None:
    a, b = replicas[:2]
    async with fleet(tmp_path, [a, b], fleet={"scrape_timeout": 0.05, "stale_after": 2.0}) as f:
        a.metrics_mode = "hang"
        await f.read_again()
        assert f.fleet.replicas[0].scrape_error
        assert f.fleet.replicas[0].health.value == "ok"  # /health answers: still takes work
        assert await f.ask() == 200


async def test_lumbungs_own_metrics_show_each_replica(tmp_path: Path, replicas: list[FakeUpstream]) -> None:
    a, b = replicas[:2]
    async with fleet(tmp_path, [a, b]) as f:
        a.health_status, a.waiting, b.kv_usage = 503, 3, 0.5
        b.prefix_queries, b.prefix_hits = 200, 50
        await f.read_again()
        text = (await f.lb.client.get("/metrics")).text
    series = {
        (family.name, sample.labels.get("provider")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if family.name.startswith("lumbung_vllm_replica")
    }
    assert series[("lumbung_vllm_replica_accepting", "gpu[0]")] == 0.0
    assert series[("lumbung_vllm_replica_accepting", "gpu[1]")] == 1.0
    assert series[("lumbung_vllm_replica_waiting_requests", "gpu[0]")] == 3.0
    assert series[("lumbung_vllm_replica_kv_cache_usage", "gpu[1]")] == 0.5
    assert series[("lumbung_vllm_replica_prefix_cache_hit_rate", "gpu[1]")] == 0.25
    assert series[("lumbung_vllm_replica_metrics_age_seconds", "gpu[1]")] == 0.0
