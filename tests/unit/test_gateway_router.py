"""Failover decisions of the router, with scripted in-process backends and a fake clock.
(Real HTTP providers misbehaving are in tests/e2e/test_gateway_failover.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import pytest

from lumbung.clock import FakeClock
from lumbung.config import Timeouts
from lumbung.engines.base import Embeddings, collect
from lumbung.errors import (
    ApiError,
    ContextLengthExceeded,
    Overloaded,
    PermissionDenied,
    ProviderCutOff,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from lumbung.gateway.breaker import BreakerPolicy, BreakerState
from lumbung.gateway.retry import RetryBudget
from lumbung.gateway.router import MAX_PAUSE, Gateway
from lumbung.gateway.state import Member, ProviderState, Route, new_target
from lumbung.types import ChatRequest, Chunk, CompletionRequest, Message, ModelInfo, Usage

T = TypeVar("T")


@dataclass
class Scripted:
    """A provider that does what ``script`` says next: "ok", "hang", an ApiError, or "break@k"."""

    name: str
    script: list[object] = field(default_factory=list)
    default: object = "ok"
    calls: int = 0
    closed: int = 0
    waiting: int = 0  # streams hanging or stalled right now

    def models(self) -> list[ModelInfo]:
        return []

    async def stream(self, request: ChatRequest | CompletionRequest) -> AsyncGenerator[Chunk, None]:
        self.calls += 1
        step = self.script.pop(0) if self.script else self.default
        try:
            if isinstance(step, ApiError):
                raise step
            if step == "hang":
                await self._wait()
            for i in range(3):
                if step == f"break@{i}":
                    raise UpstreamError(f"{self.name} broke")
                if step == f"stall@{i}":
                    await self._wait()
                yield Chunk(text=f"{self.name}{i} ")
            yield Chunk(finish_reason="stop", usage=Usage(1, 3))
        finally:
            self.closed += 1

    async def _wait(self) -> None:
        self.waiting += 1
        try:
            await asyncio.Event().wait()
        finally:
            self.waiting -= 1

    async def embed(self, model: str, inputs: list[str]) -> Embeddings:
        return Embeddings([[1.0]], 1)

    async def count_tokens(self, request: ChatRequest | CompletionRequest) -> int:
        return 1

    async def health(self) -> bool:
        return True


def gateway(
    *tiers: list[Scripted], egress: list[str] | None = None, juris: str = "ID"
) -> tuple[Gateway, FakeClock, dict[str, ProviderState]]:
    clock = FakeClock()
    providers = {}
    route_tiers = []
    for tier in tiers:
        members = []
        for b in tier:
            p = ProviderState(b.name, "openai", juris, b, Timeouts(first_token=0.3, idle=0.3), clock)
            providers[b.name] = p
            members.append(Member(new_target(p, "m", BreakerPolicy(3, 10.0, 1.0)), 1.0))
        route_tiers.append(members)
    route = Route("chat", route_tiers, budget=RetryBudget(clock=clock))
    gw = Gateway([], providers=list(providers.values()), routes=[route], egress=egress, clock=clock)
    return gw, clock, providers


def req() -> ChatRequest:
    return ChatRequest(model="chat", messages=[Message("user", "hi")])


async def answer(gw: Gateway) -> str:
    return (await collect(gw.stream(req()))).text


async def until(condition: Callable[[], object]) -> None:
    """Let the loop run until ``condition()`` holds (a state to reach, never a duration)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition was never reached")


async def stepped(clock: FakeClock, backend: Scripted, work: Awaitable[T], seconds: float) -> T:
    """Run ``work``; each time ``backend`` stalls, move the clock on by ``seconds``."""
    task = asyncio.ensure_future(work)
    while not task.done():
        await until(lambda: task.done() or backend.waiting)
        if not task.done():
            clock.advance(seconds)
            await until(lambda: task.done() or not backend.waiting)
    return task.result()


async def test_each_failure_before_the_first_token_moves_on() -> None:
    a, b = Scripted("a"), Scripted("b")
    gw, clock, _ = gateway([a], [b])
    for failure in (UpstreamError("500"), "hang", "break@0", Overloaded("busy", retry_after=0.1)):
        a.script = [failure]
        assert await stepped(clock, a, answer(gw), 0.31) == "b0 b1 b2 "  # past the first-token timeout
    assert a.closed == a.calls  # every abandoned upstream stream was closed


async def test_nothing_is_retried_after_the_first_token() -> None:
    a, b = Scripted("a", script=["break@2"]), Scripted("b")
    gw, _, _ = gateway([a], [b])
    stream = gw.stream(req())
    got = [await anext(stream), await anext(stream)]
    assert [c.text for c in got] == ["a0 ", "a1 "]
    with pytest.raises(UpstreamError, match="a broke"):
        await anext(stream)
    assert b.calls == 0


async def test_the_clients_own_errors_are_not_retried() -> None:
    a, b = Scripted("a", script=[ContextLengthExceeded("too long")]), Scripted("b")
    gw, _, _ = gateway([a], [b])
    with pytest.raises(ContextLengthExceeded):
        await answer(gw)
    assert b.calls == 0


async def test_breaker_opens_then_probes_then_closes() -> None:
    a, b = Scripted("a", default=UpstreamError("down")), Scripted("b")
    gw, clock, _ = gateway([a], [b])
    for _ in range(3):
        assert (await answer(gw)).startswith("b0")
    assert a.calls == 3
    target = gw.resolve("chat").tiers[0][0].state
    assert target.breaker.state is BreakerState.OPEN
    await answer(gw)
    assert a.calls == 3  # skipped while open
    clock.advance(10)
    a.default = "ok"
    assert (await answer(gw)).startswith("a0")  # the probe succeeds
    assert target.breaker.state is BreakerState.CLOSED


async def test_an_answer_taken_to_its_last_item_counts_as_a_success() -> None:
    """Whole answers and pass-through relays stop at the last item without asking for more: the
    success must be on record by then, or a probe never closes the breaker and failures add up
    across successes."""
    a, b = Scripted("a", default=UpstreamError("down")), Scripted("b")
    gw, clock, _ = gateway([a], [b])
    target = gw.resolve("chat").tiers[0][0].state
    for _ in range(2):
        await gw.complete(req())
    a.default = "ok"
    assert (await gw.complete(req())).text.startswith("a0")
    assert target.breaker.failures == 0  # consecutive failures: a success in between resets them
    a.default = UpstreamError("down")
    for _ in range(3):
        await gw.complete(req())
    assert target.breaker.state is BreakerState.OPEN
    clock.advance(10)
    a.default = "ok"
    stream = gw.stream(req())
    async for chunk in stream:
        if chunk.finish_reason:
            break  # the consumer stops at the last chunk, as the relays do
    await stream.aclose()
    assert target.breaker.state is BreakerState.CLOSED


async def test_cut_off_marks_the_provider_for_its_cooldown() -> None:
    a, b = Scripted("a", script=[ProviderCutOff("unsupported_country_region_territory")]), Scripted("b")
    gw, clock, providers = gateway([a], [b])
    await answer(gw)
    assert providers["a"].is_cut_off
    status = gw.status()["providers"][0]
    assert status["health"] == "cut_off" and "unsupported_country" in status["cut_off"]["reason"]
    for _ in range(5):
        await answer(gw)
    assert a.calls == 1
    clock.advance(3600)
    assert not providers["a"].is_cut_off
    assert (await answer(gw)).startswith("a0")


async def test_retry_after_is_honoured() -> None:
    a, b = Scripted("a", script=[RateLimited("slow down", retry_after=30)]), Scripted("b")
    gw, clock, _ = gateway([a], [b])
    await answer(gw)
    clock.advance(29)
    await answer(gw)
    assert a.calls == 1
    clock.advance(1)
    assert (await answer(gw)).startswith("a0")


async def test_every_target_rate_limited_gives_429_with_the_soonest_retry_after() -> None:
    a = Scripted("a", default=RateLimited("x", retry_after=40))
    b = Scripted("b", default=RateLimited("y", retry_after=20))
    gw, _, _ = gateway([a, b])
    with pytest.raises(RateLimited) as err:
        await answer(gw)
    assert err.value.retry_after == 20


async def paused(clock: FakeClock, work: Awaitable[T]) -> T:
    """Run ``work`` over providers that fail at once, moving the clock past each pause between passes
    over the route (then the pause is the only timer set)."""
    task = asyncio.ensure_future(work)
    while not task.done():
        await until(lambda: task.done() or clock.pending)
        if not task.done():
            clock.advance(MAX_PAUSE)
    return task.result()


async def test_the_pause_before_a_second_pass_is_on_the_gateways_clock() -> None:
    a = Scripted("a", script=[UpstreamError("a is down")])
    gw, clock, _ = gateway([a])
    task = asyncio.ensure_future(answer(gw))
    await until(lambda: clock.pending)
    assert a.calls == 1 and not task.done()  # waiting for the clock, not for the event loop's time
    clock.advance(MAX_PAUSE)
    assert (await task).startswith("a0") and a.calls == 2


async def test_all_failed_names_every_target() -> None:
    a, b = (
        Scripted("a", default=UpstreamError("a is down")),
        Scripted("b", default=UpstreamError("b is down")),
    )
    gw, clock, _ = gateway([a], [b])
    with pytest.raises(UpstreamError) as err:
        await paused(clock, answer(gw))
    assert "a is down" in err.value.message and "b is down" in err.value.message
    assert err.value.code == "all_targets_failed"


async def test_a_single_target_keeps_its_own_error() -> None:
    a = Scripted("a", default=Overloaded("queue full", retry_after=5))
    gw, _, _ = gateway([a])
    with pytest.raises(Overloaded, match="queue full"):
        await answer(gw)


async def test_retry_budget_bounds_failover_storms() -> None:
    a, b = Scripted("a", default=UpstreamError("down")), Scripted("b")
    gw, _, _ = gateway([a], [b])
    route = gw.resolve("chat")
    route.budget = RetryBudget(ratio=0.0, min_per_second=0.1, window=10, clock=gw.clock)
    route.tiers[0][0].state.breaker.policy.failures_to_open = 1000
    outcomes = []
    for _ in range(3):
        try:
            outcomes.append(await answer(gw))
        except UpstreamError as exc:
            outcomes.append(exc.code or "")
    assert outcomes[0].startswith("b0") and outcomes[1:] == ["retry_budget_exhausted"] * 2


async def test_balancing_within_a_tier_and_tiers_in_order() -> None:
    a1, a2, b = Scripted("a1"), Scripted("a2"), Scripted("b")
    gw, _, _ = gateway([a1, a2], [b])
    streams = [gw.stream(req()) for _ in range(4)]
    firsts = [(await anext(s)).text for s in streams]
    assert sorted(firsts) == ["a10 ", "a10 ", "a20 ", "a20 "]  # least outstanding spreads them
    assert b.calls == 0
    for s in streams:
        await s.aclose()
    assert a1.closed + a2.closed == 4


async def test_egress_is_checked_on_every_attempt() -> None:
    a = Scripted("a")
    gw, _, providers = gateway([a], egress=["ID"])
    providers["a"].jurisdiction = "US"  # as if the state were tampered with after start-up
    with pytest.raises(PermissionDenied):
        await answer(gw)
    assert a.calls == 0


def test_egress_is_checked_when_the_gateway_is_built() -> None:
    with pytest.raises(PermissionDenied):
        gateway([Scripted("a")], egress=["ID"], juris="CN")


async def test_closing_the_stream_closes_the_upstream() -> None:
    a = Scripted("a")
    gw, _, _ = gateway([a])
    stream = gw.stream(req())
    await anext(stream)
    await stream.aclose()
    assert a.closed == 1
    assert gw.resolve("chat").tiers[0][0].state.inflight == 0


async def test_silence_after_the_first_token_times_out_without_a_retry() -> None:
    a, b = Scripted("a", script=["stall@1"]), Scripted("b")
    gw, clock, _ = gateway([a], [b])
    stream = gw.stream(req())
    assert (await anext(stream)).text == "a0 "
    next_one = asyncio.ensure_future(anext(stream))
    await until(lambda: a.waiting)
    clock.advance(0.29)  # within the idle timeout (0.3 s): still waiting
    await until(lambda: clock.pending)
    assert not next_one.done()
    clock.advance(0.02)
    with pytest.raises(UpstreamTimeout, match="next token"):
        await next_one
    assert b.calls == 0 and a.closed == 1
    assert gw.resolve("chat").tiers[0][0].state.failures == 1


async def test_a_slow_client_is_not_a_silent_provider() -> None:
    a = Scripted("a")
    gw, clock, _ = gateway([a])
    got = []
    async for chunk in gw.stream(req()):
        got.append(chunk)
        clock.advance(0.5)  # longer than the idle timeout (0.3 s), spent on our side
    assert [c.text for c in got[:3]] == ["a0 ", "a1 ", "a2 "] and got[-1].finish_reason == "stop"


async def test_a_genuine_cancellation_is_not_taken_for_a_timeout() -> None:
    a = Scripted("a", script=["stall@1"])
    gw, _, _ = gateway([a])
    stream = gw.stream(req())
    await anext(stream)
    task = asyncio.ensure_future(anext(stream))
    await until(lambda: a.waiting)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gw.resolve("chat").tiers[0][0].state.failures == 0


async def test_a_whole_answer_fails_over_even_after_its_first_token() -> None:
    a, b = Scripted("a", script=["break@2"]), Scripted("b")
    gw, _, _ = gateway([a], [b])
    done = await gw.complete(req())
    assert done.text == "b0 b1 b2 " and a.closed == 1
    assert gw.resolve("chat").tiers[0][0].state.failures == 1


async def test_whole_answers_stop_together_when_one_fails() -> None:
    a = Scripted("a", script=["ok", ContextLengthExceeded("too long")])
    gw, _, _ = gateway([a])
    with pytest.raises(ContextLengthExceeded):
        await gw.complete_all([req(), req()])
    assert [c.text for c in await gw.complete_all([req(), req()])] == ["a0 a1 a2 ", "a0 a1 a2 "]


@dataclass
class Resident(Scripted):
    """A provider that keeps its models loaded (as the local engine does)."""

    keep_alive: dict[str, float] = field(default_factory=dict)
    unloaded: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)

    def set_keep_alive(self, model: str, seconds: float) -> None:
        self.keep_alive[model] = seconds

    async def unload_when_idle(self, model: str) -> None:
        self.unloaded.append(model)

    async def load(self, model: str) -> None:
        self.loaded.append(model)


async def test_keep_alive_and_unload_reach_only_the_targets_that_keep_models_loaded() -> None:
    local, remote = Resident("local"), Scripted("remote")
    gw, _, _ = gateway([local], [remote])
    gw.set_keep_alive("chat", 60.0)
    await gw.unload_when_idle("chat")
    await gw.load("chat")
    assert local.keep_alive == {"m": 60.0} and local.unloaded == ["m"] and local.loaded == ["m"]
    assert not hasattr(remote, "keep_alive")
    with pytest.raises(ApiError) as err:
        gw.set_keep_alive("nope", 1.0)
    assert err.value.status == 404
