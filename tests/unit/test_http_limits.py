"""Rate limits at the request boundary, in process over a fake backend, for every API: 429 past a
limit in the API's own error envelope with Retry-After and OpenAI's x-ratelimit-* headers (on
successful answers too), tokens settled with the real usage, concurrency slots given back however a
request ends, refusals counted in /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lumbung.accounts.keys import digest
from lumbung.accounts.limits import estimate
from lumbung.clock import FakeClock
from lumbung.errors import UpstreamError
from tests.support.fake_backend import Fail, Hang
from tests.support.fake_upstream import FakeUpstream
from tests.support.inprocess import MODEL, in_process, route
from tests.support.keys import make_key
from tests.support.redis_server import RedisServer
from tests.support.surfaces import ANTHROPIC_MESSAGES, OPENAI_CHAT, SURFACES, Surface

surfaces = pytest.mark.parametrize("surface", SURFACES, ids=[s.name for s in SURFACES])


def headers(surface: Surface, key: str) -> dict[str, str]:
    if surface is ANTHROPIC_MESSAGES:
        return {**surface.headers, "x-api-key": key}
    return {**surface.headers, "authorization": f"Bearer {key}"}


async def until(condition: object) -> None:
    """Let the loop run until ``condition()`` holds (a state to reach, never a duration)."""
    for _ in range(10_000):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition was never reached")


def limited(tmp_path: Path, **limits: int) -> Any:
    return in_process(
        tmp_path, api_keys=["k1", "k2"], admin_api_keys=["op"], key_limits=limits, clock=FakeClock()
    )


@surfaces
async def test_past_the_requests_limit_is_429_in_the_apis_envelope_with_openais_headers(
    tmp_path: Path, surface: Surface
) -> None:
    async with limited(tmp_path, rpm=2) as lb:
        body = surface.body(MODEL, stream=False)
        answers = [
            await lb.client.post(surface.path, json=body, headers=headers(surface, "k1")) for _ in range(3)
        ]
        other = await lb.client.post(surface.path, json=body, headers=headers(surface, "k2"))
    ok1, ok2, refused = answers
    for answer, remaining in ((ok1, "1"), (ok2, "0")):
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-ratelimit-limit-requests"] == "2"
        assert answer.headers["x-ratelimit-remaining-requests"] == remaining
    assert ok2.headers["x-ratelimit-reset-requests"] == "1m0s"
    assert refused.status_code == 429
    assert surface.is_error_envelope(refused.json())
    assert refused.headers["retry-after"] == "30"  # one request back every 30 s
    assert refused.headers["x-ratelimit-limit-requests"] == "2"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == "1m0s"
    assert "x-request-id" in refused.headers
    assert other.status_code == 200  # another key counts on its own
    assert lb.local.opened == 3  # the refused request never reached the backend


async def test_the_openai_refusal_names_its_limit_as_openai_does(tmp_path: Path) -> None:
    async with limited(tmp_path, rpm=1) as lb:
        auth = headers(OPENAI_CHAT, "k1")
        await lb.client.post(OPENAI_CHAT.path, json=OPENAI_CHAT.body(MODEL, stream=False), headers=auth)
        refused = await lb.client.post(
            OPENAI_CHAT.path, json=OPENAI_CHAT.body(MODEL, stream=False), headers=auth
        )
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert "requests per minute" in error["message"]


async def test_anthropic_refusals_are_rate_limit_errors(tmp_path: Path) -> None:
    surface = ANTHROPIC_MESSAGES
    async with limited(tmp_path, rpm=1) as lb:
        for _ in range(2):
            refused = await lb.client.post(
                surface.path, json=surface.body(MODEL, stream=True), headers=headers(surface, "k1")
            )
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limit_error"


@surfaces
async def test_tokens_are_reserved_from_the_body_and_settled_with_the_usage(
    tmp_path: Path, surface: Surface
) -> None:
    async with limited(tmp_path, tpm=10_000) as lb:
        body = surface.body(MODEL, stream=True)
        sent = httpx.Request("POST", surface.path, json=body).content  # the bytes the client sends
        first = await lb.client.post(surface.path, json=body, headers=headers(surface, "k1"))
        second = await lb.client.post(surface.path, json=body, headers=headers(surface, "k1"))
    assert first.status_code == second.status_code == 200
    reserved = estimate(sent)
    assert first.headers["x-ratelimit-limit-tokens"] == "10000"
    assert int(first.headers["x-ratelimit-remaining-tokens"]) == 10_000 - reserved
    # The first one used 2 prompt + 3 completion tokens (the fake's usage): the rest came back.
    assert int(second.headers["x-ratelimit-remaining-tokens"]) == 10_000 - 5 - reserved


async def test_a_cut_stream_keeps_its_reservation_and_a_failed_request_gets_it_back(tmp_path: Path) -> None:
    surface = OPENAI_CHAT
    async with limited(tmp_path, tpm=10_000) as lb:
        auth = headers(surface, "k1")
        body = surface.body(MODEL, stream=True)
        reserved = estimate(httpx.Request("POST", surface.path, json=body).content)

        async def remaining() -> int:
            # A request that fails before answering: it shows the bucket, then gives its tokens back.
            lb.local.then(Fail(UpstreamError("broke")))
            response = await lb.client.post(surface.path, json=body, headers=auth)
            assert response.status_code >= 500
            return int(response.headers["x-ratelimit-remaining-tokens"]) + reserved

        assert await remaining() == 10_000
        assert await remaining() == 10_000  # the failed one cost nothing
        lb.local.then(Hang(after=1))
        async with lb.client.stream("POST", surface.path, json=body, headers=auth) as response:
            assert response.status_code == 200
            await until(lambda: lb.local.hanging == 1)
        await until(lambda: lb.local.open_streams == 0)
        # Cut after its first words, its usage never reported: the estimate stands.
        assert await remaining() == 10_000 - reserved


async def test_past_the_tokens_limit_is_429_naming_tokens(tmp_path: Path) -> None:
    async with limited(tmp_path, tpm=100) as lb:
        body = {**OPENAI_CHAT.body(MODEL, stream=False), "max_tokens": 90}
        first = await lb.client.post(OPENAI_CHAT.path, json=body, headers=headers(OPENAI_CHAT, "k1"))
        refused = await lb.client.post(OPENAI_CHAT.path, json=body, headers=headers(OPENAI_CHAT, "k1"))
    assert first.status_code == 200
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "tokens"
    assert refused.headers["x-ratelimit-limit-tokens"] == "100"
    assert int(refused.headers["retry-after"]) >= 1


@surfaces
async def test_a_concurrency_slot_is_held_while_answering_and_given_back_however_it_ends(
    tmp_path: Path, surface: Surface
) -> None:
    async with limited(tmp_path, max_concurrent=1) as lb:
        auth = headers(surface, "k1")
        stream_body, whole_body = surface.body(MODEL, stream=True), surface.body(MODEL, stream=False)
        # A stream cut by its client mid-answer.
        lb.local.then(Hang(after=1))
        async with lb.client.stream("POST", surface.path, json=stream_body, headers=auth) as response:
            assert response.status_code == 200
            await until(lambda: lb.local.hanging == 1)
            busy = await lb.client.post(surface.path, json=whole_body, headers=auth)
            assert busy.status_code == 429
            assert surface.is_error_envelope(busy.json())
            assert busy.headers["retry-after"] == "1"
        await until(lambda: lb.local.open_streams == 0)
        # A client gone before the first byte.
        lb.local.then(Hang())
        task = asyncio.ensure_future(lb.client.post(surface.path, json=whole_body, headers=auth))
        await until(lambda: lb.local.hanging == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: lb.local.open_streams == 0)
        # A backend that fails, before and after the first byte.
        lb.local.then(Fail(UpstreamError("broke")), Fail(UpstreamError("broke midway"), after=1))
        failed = await lb.client.post(surface.path, json=whole_body, headers=auth)
        cut = await lb.client.post(surface.path, json=stream_body, headers=auth)
        assert failed.status_code >= 500 and cut.status_code == 200
        after = await lb.client.post(surface.path, json=whole_body, headers=auth)
    assert after.status_code == 200, after.text
    assert lb.app.state.lumbung.limits.limiter.running("cfg:" + digest("k1")[:32]) == 0


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream("a", words=4)
    server = await fake.serve()
    yield fake
    server.close()
    await server.wait_closed()


async def test_the_pass_through_path_is_limited_too(tmp_path: Path, upstream: FakeUpstream) -> None:
    async with in_process(
        tmp_path,
        providers={"a": upstream.base_url},
        routes=[route("r", ["a"])],
        api_keys=["k1"],
        key_limits={"rpm": 1},
        clock=FakeClock(),
    ) as lb:
        auth = headers(OPENAI_CHAT, "k1")
        ok = await lb.client.post(OPENAI_CHAT.path, json=OPENAI_CHAT.body("r", stream=True), headers=auth)
        refused = await lb.client.post(
            OPENAI_CHAT.path, json=OPENAI_CHAT.body("r", stream=True), headers=auth
        )
    assert ok.status_code == 200 and ok.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.status_code == 429 and refused.headers["x-ratelimit-limit-requests"] == "1"
    assert len(upstream.seen) == 1


async def test_a_virtual_keys_own_limits_apply_to_it(tmp_path: Path) -> None:
    _, team = await make_key(tmp_path, "team", rpm=1, max_concurrent=3)
    _, free = await make_key(tmp_path, "free")
    async with in_process(tmp_path, api_keys=["k1"], key_limits={"rpm": 100}, clock=FakeClock()) as lb:
        body = OPENAI_CHAT.body(MODEL, stream=False)
        team_answers = [
            await lb.client.post(OPENAI_CHAT.path, json=body, headers=headers(OPENAI_CHAT, team))
            for _ in range(2)
        ]
        free_answers = [
            await lb.client.post(OPENAI_CHAT.path, json=body, headers=headers(OPENAI_CHAT, free))
            for _ in range(3)
        ]
    assert [r.status_code for r in team_answers] == [200, 429]
    assert team_answers[1].headers["x-ratelimit-limit-requests"] == "1"
    # A virtual key without limits has none: config keys' `key_limits` are not its.
    assert [r.status_code for r in free_answers] == [200, 200, 200]
    assert "x-ratelimit-limit-requests" not in free_answers[0].headers


async def test_refusals_are_counted_in_the_metrics(tmp_path: Path) -> None:
    async with limited(tmp_path, rpm=1) as lb:
        for surface in (OPENAI_CHAT, ANTHROPIC_MESSAGES, ANTHROPIC_MESSAGES):
            await lb.client.post(
                surface.path, json=surface.body(MODEL, stream=False), headers=headers(surface, "k2")
            )
        scrape = await lb.client.get("/metrics", headers={"authorization": "Bearer op"})
    assert scrape.status_code == 200
    samples = {
        (s.labels.get("surface"), s.labels.get("limit")): s.value
        for family in text_string_to_metric_families(scrape.text)
        if family.name == "lumbung_rate_limited_requests"
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert samples == {("anthropic", "requests"): 2.0}


async def test_two_apps_over_one_redis_share_a_keys_limits(tmp_path: Path, redis_server: RedisServer) -> None:
    options: dict[str, Any] = {"api_keys": ["k1"], "key_limits": {"rpm": 3}, "redis_url": redis_server.url}
    auth = headers(OPENAI_CHAT, "k1")
    body = OPENAI_CHAT.body(MODEL, stream=False)
    async with in_process(tmp_path / "a", **options) as a, in_process(tmp_path / "b", **options) as b:
        answers = [await lb.client.post(OPENAI_CHAT.path, json=body, headers=auth) for lb in (a, b, a, b)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in answers] == ["2", "1", "0", "0"]
    assert 1 <= int(answers[3].headers["retry-after"]) <= 20
    assert (a.local.opened, b.local.opened) == (2, 1)
