"""Provider state shared through a real redis-server by two (and three) in-process lumbung instances:
a cut-off or an opened circuit found by one is known to the others without their sending a request,
an instance that starts later reads the marks in force, and an instance without redis_url keeps its
own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from lumbung.errors import ProviderCutOff, UpstreamError
from lumbung.gateway.breaker import BreakerState
from lumbung.gateway.shared import SharedState
from lumbung.gateway.state import ProviderState, TargetState
from tests.support.fake_backend import Fail, FakeBackend
from tests.support.inprocess import InProcess, in_process, route
from tests.support.redis_server import RedisServer
from tests.support.surfaces import OPENAI_CHAT

REGION = '{"error": {"code": "unsupported_country_region_territory", "message": "Country not supported"}}'


async def until(condition: Callable[[], object], what: str) -> None:
    """Wait for a state another instance causes (through Redis); never asserts how long it took."""
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)


def instance(home: Path, redis_url: str | None, **options: Any) -> Any:
    return in_process(
        home,
        providers={"a": FakeBackend("a"), "b": FakeBackend("b")},
        provider_options={name: {"circuit": {"failures_to_open": 1, "open_for": 300}} for name in ("a", "b")},
        routes=[route("r", ["a"], ["b"])],
        redis_url=redis_url,
        **options,
    )


def provider(lb: InProcess, name: str) -> ProviderState:
    return next(p for p in lb.gateway.providers if p.name == name)


def target(lb: InProcess, key: str) -> TargetState:
    return next(t for t in lb.gateway.targets() if t.key == key)


def shared(lb: InProcess) -> SharedState:
    return next(w for w in lb.gateway.watchers if isinstance(w, SharedState))


async def ask(lb: InProcess) -> int:
    response = await lb.client.post(OPENAI_CHAT.path, json=OPENAI_CHAT.body("r", stream=False))
    return response.status_code


@contextlib.asynccontextmanager
async def two(tmp_path: Path, redis_url: str) -> AsyncIterator[tuple[InProcess, InProcess]]:
    async with instance(tmp_path / "a", redis_url) as one, instance(tmp_path / "b", redis_url) as other:
        await until(lambda: shared(one).listening and shared(other).listening, "both listen")
        yield one, other


async def test_a_cut_off_found_by_one_instance_reaches_the_other(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with two(tmp_path, redis_server.url) as (one, other):
        one.fake("a").then(Fail(ProviderCutOff(REGION)))
        assert await ask(one) == 200  # moved on to b
        assert provider(one, "a").is_cut_off
        await until(lambda: provider(other, "a").is_cut_off, "the other instance learns the cut-off")
        learned = provider(other, "a")
        assert "unsupported_country_region_territory" in (learned.cut_off_reason or "")
        # Within the provider's cool-down (an hour by default), as where it was found.
        assert 3000 < learned.cut_off_until - learned.clock() <= 3600
        assert await ask(other) == 200
        assert other.fake("a").opened == 0  # the other instance never sent a to the cut-off provider
        status = (await other.client.get("/admin/providers")).json()
        assert next(p for p in status["providers"] if p["name"] == "a")["health"] == "cut_off"


async def test_an_instance_that_starts_later_reads_the_marks_in_force(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with instance(tmp_path / "a", redis_server.url) as one:
        await until(lambda: shared(one).listening, "listening")
        one.fake("a").then(Fail(ProviderCutOff(REGION)))
        one.fake("b").then(Fail(UpstreamError("b is down")))
        assert await ask(one) >= 500  # a cut off, b's circuit open
        kept = lambda: redis_server.command("KEYS", "lumbung:marks:*").count(b"lumbung:marks:")  # noqa: E731
        await until(lambda: kept() == 2, "both marks kept in redis")
        async with instance(tmp_path / "late", redis_server.url) as late:
            await until(lambda: provider(late, "a").is_cut_off, "the late instance reads the cut-off")
            await until(lambda: target(late, "b/m").breaker.state is BreakerState.OPEN, "and the circuit")
            assert target(late, "a/m").breaker.state is BreakerState.CLOSED


async def test_an_opened_circuit_reaches_the_other_instance(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with two(tmp_path, redis_server.url) as (one, other):
        one.fake("a").then(Fail(UpstreamError("a broke")))
        assert await ask(one) == 200
        assert target(one, "a/m").breaker.state is BreakerState.OPEN
        await until(
            lambda: target(other, "a/m").breaker.state is BreakerState.OPEN, "the circuit opens there"
        )
        assert 200 < target(other, "a/m").breaker.probe_in <= 300
        assert not provider(other, "a").is_cut_off
        assert await ask(other) == 200
        assert other.fake("a").opened == 0


async def test_an_instance_ignores_its_own_marks_and_malformed_ones(
    tmp_path: Path, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with instance(tmp_path, redis_server.url) as one:
        marks = shared(one)
        own = json.dumps({"kind": "cut_off", "name": "a", "seconds": 60, "origin": marks.origin})
        with caplog.at_level(logging.WARNING, logger="lumbung.gateway.shared"):
            for data in (
                own,
                "not json",
                '{"kind": "cut_off"}',
                '{"kind": "cut_off", "name": "zz", "seconds": 5}',
            ):
                marks.take(data, None)
        assert not provider(one, "a").is_cut_off
        assert marks.learned == 0
    assert len([r for r in caplog.records if "malformed" in r.message]) == 2


async def test_without_redis_each_instance_keeps_its_own_marks(tmp_path: Path) -> None:
    async with instance(tmp_path / "a", None) as one, instance(tmp_path / "b", None) as other:
        one.fake("a").then(Fail(ProviderCutOff(REGION)))
        assert await ask(one) == 200
        assert provider(one, "a").is_cut_off and not provider(other, "a").is_cut_off
        assert provider(one, "a").marks is None
        assert not [w for w in one.gateway.watchers if isinstance(w, SharedState)]


async def test_after_redis_comes_back_the_instances_listen_again(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with two(tmp_path, redis_server.url) as (one, other):
        redis_server.restart()
        # Each notices the loss, then subscribes again (and reads the marks in force: none now).
        await until(lambda: not shared(other).listening or shared(other)._down, "the loss is noticed")
        await until(lambda: shared(one).listening and shared(other).listening, "both listen again")
        one.fake("a").then(Fail(ProviderCutOff(REGION)))
        assert await ask(one) == 200
        await until(lambda: provider(other, "a").is_cut_off, "the cut-off reaches the other instance")
