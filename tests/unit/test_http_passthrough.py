"""The pass-through path's wire rules in process, over real HTTP to fake upstreams on 127.0.0.1: failover
only before the first byte, an in-band OpenAI error event after it (never [DONE]), and a client hang-up
closing the upstream call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.inprocess import InProcess, in_process, route
from tests.support.surfaces import OPENAI_CHAT, openai_error


async def until(condition: object) -> None:
    """Let the loop run until ``condition()`` holds (a state to reach, never a duration)."""
    for _ in range(200_000):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition was never reached")


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[FakeUpstream, FakeUpstream]]:
    a, b = FakeUpstream("a", words=4), FakeUpstream("b", words=4)
    servers = [await a.serve(), await b.serve()]
    yield a, b
    for server in servers:
        server.close()
        await server.wait_closed()


def two_tiers(tmp_path: Path, a: FakeUpstream, b: FakeUpstream) -> object:
    return in_process(
        tmp_path, providers={"a": a.base_url, "b": b.base_url}, routes=[route("r", ["a"], ["b"])]
    )


async def chat(lb: InProcess, *, stream: bool) -> tuple[int, bytes]:
    response = await lb.client.post(OPENAI_CHAT.path, json=OPENAI_CHAT.body("r", stream=stream))
    return response.status_code, response.content


@pytest.mark.parametrize("mode", ["500", "429", "403_region", "error_event"])
async def test_a_failure_before_the_first_byte_moves_to_the_next_target(
    tmp_path: Path, upstreams: tuple[FakeUpstream, FakeUpstream], mode: str
) -> None:
    a, b = upstreams
    a.set(mode, retry_after=30)
    async with two_tiers(tmp_path, a, b) as lb:  # type: ignore[attr-defined]
        for stream in (True, False):
            status, body = await chat(lb, stream=stream)
            assert status == 200, body
            if stream:
                assert OPENAI_CHAT.is_done(OPENAI_CHAT.parse(body))
            assert b"from b" in body
    assert len(b.seen) == 2


async def test_a_failure_after_the_first_byte_is_an_error_event_never_done(
    tmp_path: Path, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    a, b = upstreams
    a.set("error_after", k=2)
    async with two_tiers(tmp_path, a, b) as lb:  # type: ignore[attr-defined]
        status, body = await chat(lb, stream=True)
    events = OPENAI_CHAT.parse(body)
    assert status == 200
    assert openai_error(events[-1]["data"])
    assert not OPENAI_CHAT.is_done(events)
    assert not b.seen


async def test_a_reset_after_the_first_byte_is_an_error_event_never_done(
    tmp_path: Path, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    a, b = upstreams
    a.set("reset_after", k=2)
    async with two_tiers(tmp_path, a, b) as lb:  # type: ignore[attr-defined]
        status, body = await chat(lb, stream=True)
    events = OPENAI_CHAT.parse(body)
    assert status == 200
    assert openai_error(events[-1]["data"])
    assert not b.seen


async def test_a_client_hang_up_mid_stream_closes_the_upstream_call(
    tmp_path: Path, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    a, b = upstreams
    a.set("stall_after", k=1)
    async with two_tiers(tmp_path, a, b) as lb:  # type: ignore[attr-defined]
        async with lb.client.stream("POST", OPENAI_CHAT.path, json=OPENAI_CHAT.body("r", stream=True)) as r:
            assert r.status_code == 200
            async for _ in r.aiter_bytes():
                break  # the first content arrived; now hang up
        await until(lambda: a.disconnects)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_a_client_hang_up_before_the_first_byte_closes_the_upstream_call(
    tmp_path: Path, upstreams: tuple[FakeUpstream, FakeUpstream], stream: bool
) -> None:
    a, b = upstreams
    a.set("hang_before_headers")
    async with two_tiers(tmp_path, a, b) as lb:  # type: ignore[attr-defined]
        task = asyncio.ensure_future(chat(lb, stream=stream))
        await until(lambda: a.seen)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: a.disconnects)
    assert not b.seen
