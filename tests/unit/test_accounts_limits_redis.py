"""The limiter in a real redis-server: two limiters (as two lumbung instances would) share one key's
buckets and slots, atomically under concurrent requests; tokens are settled, slots freed, a dead
instance's slot ends with its lease; Redis gone lets requests pass."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from lumbung.accounts.limits import Grant, Limits, RateLimitExceeded
from lumbung.accounts.limits_redis import RedisLimiter, keys_of
from tests.support.redis_server import RedisServer
from tests.support.server import free_port


@pytest.fixture
async def pair(redis_server: RedisServer) -> AsyncIterator[tuple[RedisLimiter, RedisLimiter]]:
    a, b = RedisLimiter(redis_server.url), RedisLimiter(redis_server.url)
    yield a, b
    await a.aclose()
    await b.aclose()


async def outcome(limiter: RedisLimiter, key: str, limits: Limits, tokens: int = 0) -> Grant | str:
    try:
        grant = await limiter.acquire(key, limits, tokens)
    except RateLimitExceeded as exc:
        return exc.limit
    assert grant is not None
    return grant


async def test_two_instances_share_one_requests_limit(pair: tuple[RedisLimiter, RedisLimiter]) -> None:
    a, b = pair
    limits = Limits(rpm=3)
    first, second, third = [await outcome(x, "k", limits) for x in (a, b, a)]
    assert [g.quota.remaining_requests for g in (first, second, third) if isinstance(g, Grant)] == [2, 1, 0]
    with pytest.raises(RateLimitExceeded) as refused:
        await b.acquire("k", limits, 0)
    assert refused.value.limit == "requests"
    assert refused.value.retry_after is not None
    assert 1 <= refused.value.retry_after <= 20  # a request back every 20 s (Redis's clock moves on)
    assert refused.value.quota.remaining_requests == 0
    assert isinstance(await outcome(a, "other", limits), Grant)


async def test_concurrent_requests_from_both_instances_never_pass_the_limit(
    pair: tuple[RedisLimiter, RedisLimiter],
) -> None:
    a, b = pair
    limits = Limits(rpm=10)
    results = await asyncio.gather(*(outcome(x, "k", limits) for _ in range(25) for x in (a, b)))
    assert sum(isinstance(r, Grant) for r in results) == 10
    assert results.count("requests") == 40


async def test_tokens_are_settled_across_instances(pair: tuple[RedisLimiter, RedisLimiter]) -> None:
    a, b = pair
    limits = Limits(tpm=100_000)
    grant = await a.acquire("k", limits, 60_000)
    assert grant is not None and grant.quota.remaining_tokens in range(39_999, 40_002)
    assert await outcome(b, "k", limits, 60_000) == "tokens"
    a.finish(grant, 10_000)
    await a.drain()
    settled = await b.acquire("k", limits, 60_000)
    assert settled is not None  # 50,000 came back (without them 40,000 and a bit were left)
    assert 30_000 <= settled.quota.remaining_tokens < 40_000


async def test_a_concurrency_slot_is_shared_and_given_back(pair: tuple[RedisLimiter, RedisLimiter]) -> None:
    a, b = pair
    limits = Limits(max_concurrent=2)
    one, two = await a.acquire("k", limits, 0), await b.acquire("k", limits, 0)
    assert one is not None and two is not None
    assert await outcome(a, "k", limits) == "concurrency"
    b.finish(two, 0)
    await b.drain()
    assert isinstance(await outcome(a, "k", limits), Grant)


async def test_a_slot_of_an_instance_that_died_ends_with_its_lease(
    redis_server: RedisServer, pair: tuple[RedisLimiter, RedisLimiter]
) -> None:
    a, b = pair
    limits = Limits(max_concurrent=1)
    held = await a.acquire("k", limits, 0)
    assert held is not None
    assert await outcome(b, "k", limits) == "concurrency"
    # Its instance is gone (kill -9: no finish); its lease's end is moved to the past, as time would.
    running = keys_of("k")[2]
    assert redis_server.command("ZADD", running, "XX", "1", held.lease).startswith(b":0")
    assert isinstance(await outcome(b, "k", limits), Grant)


async def test_with_redis_unreachable_requests_pass_and_it_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    try:
        with caplog.at_level(logging.ERROR, logger="lumbung.accounts.limits_redis"):
            for _ in range(3):
                assert await limiter.acquire("k", Limits(rpm=1), 0) is None
    finally:
        await limiter.aclose()
    assert len([r for r in caplog.records if "unreachable" in r.message]) == 1
