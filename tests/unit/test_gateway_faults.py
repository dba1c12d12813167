"""The drill's fault-injecting proxy in front of a fake provider on 127.0.0.1, one fault at a time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from lumbung.gateway.faults import FaultProxy
from tests.support.fake_upstream import FakeUpstream

BODY = {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "stream": True}


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[FaultProxy, FakeUpstream]]:
    up = FakeUpstream(name="up").start()
    p = await FaultProxy(f"http://127.0.0.1:{up.port}").start()
    yield p, up
    await p.close()
    up.stop()


async def call(p: FaultProxy, timeout: float = 5.0) -> httpx.Response:
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await client.post(p.url + "/v1/chat/completions", json=BODY)


async def test_pass_forwards_the_stream_untouched(proxy: tuple[FaultProxy, FakeUpstream]) -> None:
    p, up = proxy
    r = await call(p)
    assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]") and "from up" in r.text
    assert up.seen[-1].path == "/v1/chat/completions" and up.seen[-1].body == BODY


async def test_cut_off_and_500_never_reach_the_provider(proxy: tuple[FaultProxy, FakeUpstream]) -> None:
    p, up = proxy
    p.fault = "cut_off"
    r = await call(p)
    assert r.status_code == 403 and r.json()["error"]["code"] == "unsupported_country_region_territory"
    p.fault = "error_500"
    assert (await call(p)).status_code == 500
    assert up.seen == []


async def test_hang_holds_the_connection(proxy: tuple[FaultProxy, FakeUpstream]) -> None:
    p, _ = proxy
    p.fault = "hang"
    with pytest.raises(httpx.ReadTimeout):
        await call(p, timeout=0.5)


async def test_slow_delays_every_piece(proxy: tuple[FaultProxy, FakeUpstream]) -> None:
    p, up = proxy
    up.set("slow", delay=0.0)  # the provider itself is fast; the proxy slows it
    p.fault = "slow"
    start = time.monotonic()
    r = await call(p)
    assert r.status_code == 200 and "from up" in r.text
    assert time.monotonic() - start >= 0.25  # the injected delay itself (a lower bound, not a speed claim)
