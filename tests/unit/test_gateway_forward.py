"""The gateway driving byte forwarding (the pass-through path's ``Forwarder`` backends) with the same
attempt as typed answers: failover only before the first byte, timeouts on the gateway's clock, in-flight
counts, breakers, and the usage and attempts noted on the request's record. Over scripted backends and a
fake clock; real HTTP upstreams misbehaving are in tests/unit/test_http_passthrough.py and
tests/e2e/test_gateway_passthrough.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field

import pytest

from lumbung import record
from lumbung.engines.base import Forwarded, Forwarder, ForwardRequest, collect
from lumbung.errors import UpstreamError, UpstreamTimeout
from lumbung.gateway.router import Gateway
from lumbung.record import RequestRecord
from lumbung.types import ChatRequest, Usage
from tests.support.fake_backend import FakeBackend
from tests.unit.test_gateway_router import Scripted, gateway, req, stepped, until

DONE = b"data: [DONE]\n\n"


@dataclass
class Relaying(Scripted):
    """``Scripted`` as a Forwarder: each text chunk one event, the finish ``[DONE]`` (a whole answer:
    all of it in one item); the finish chunk's usage is what the upstream reported."""

    forwarded: list[tuple[ForwardRequest, str]] = field(default_factory=list)

    def forward(self, request: ForwardRequest, model: str) -> Forwarded:
        self.forwarded.append((request, model))
        reported = Usage()

        async def items() -> AsyncGenerator[bytes, None]:
            nonlocal reported
            stream = self.stream(ChatRequest(model=model, messages=[]))
            held: list[bytes] = []
            try:
                async for chunk in stream:
                    if chunk.finish_reason is None:
                        event = f"data: {chunk.text}\n\n".encode()
                        if request.stream:
                            yield event
                        else:
                            held.append(event)
                        continue
                    reported = chunk.usage or Usage()
                    yield b"".join([*held, DONE])
                    return
            finally:
                await stream.aclose()

        return Forwarded(items(), (lambda item: item.endswith(DONE)), lambda: reported)


def ask(stream: bool = True, model: str = "chat") -> ForwardRequest:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return ForwardRequest(body, None, model, stream)


async def relayed(gw: Gateway, request: ForwardRequest | None = None) -> bytes:
    return b"".join([item async for item in gw.forward(request or ask())])


@pytest.fixture
def notes() -> Iterator[RequestRecord]:
    """A request record, as the request boundary sets one for the request's task."""
    rec = RequestRecord("req-test", "POST", "/v1/chat/completions")
    token = record.current.set(rec)
    yield rec
    record.current.reset(token)


def test_a_route_forwards_only_when_every_target_can_and_pass_through_is_on() -> None:
    a, b = Relaying("a"), Scripted("b")
    assert isinstance(a, Forwarder) and not isinstance(b, Forwarder)
    assert gateway([a])[0].forwards("chat") == "chat"
    assert gateway([a], [b])[0].forwards("chat") is None
    assert gateway([a])[0].forwards("other") is None
    gw = gateway([a])[0]
    gw.resolve("chat").passthrough = False
    gw2 = Gateway([], providers=gw.providers, routes=[gw.resolve("chat")], clock=gw.clock)
    assert gw2.forwards("chat") is None


async def test_a_failure_before_the_first_byte_moves_on() -> None:
    a, b = Relaying("a"), Relaying("b")
    gw, clock, _ = gateway([a], [b])
    for failure in (UpstreamError("500"), "hang", "break@0"):
        a.script = [failure]
        assert await stepped(clock, a, relayed(gw), 0.31) == b"data: b0 \n\ndata: b1 \n\ndata: b2 \n\n" + DONE
    assert a.closed == a.calls == 3  # every abandoned upstream call was closed
    assert [model for _, model in b.forwarded] == ["m"] * 3
    assert gw.resolve("chat").tiers[0][0].state.inflight == 0


async def test_after_the_first_byte_a_failure_is_raised_into_the_stream_never_retried() -> None:
    a, b = Relaying("a", script=["break@2"]), Relaying("b")
    gw, _, _ = gateway([a], [b])
    items = gw.forward(ask())
    assert [await anext(items), await anext(items)] == [b"data: a0 \n\n", b"data: a1 \n\n"]
    with pytest.raises(UpstreamError, match="a broke"):
        await anext(items)
    assert b.calls == 0 and a.closed == 1
    target = gw.resolve("chat").tiers[0][0].state
    assert target.failures == 1 and target.inflight == 0


async def test_silence_after_the_first_byte_times_out_on_the_gateways_clock() -> None:
    a, b = Relaying("a", script=["stall@1"]), Relaying("b")
    gw, clock, _ = gateway([a], [b])
    items = gw.forward(ask())
    assert await anext(items) == b"data: a0 \n\n"
    waiting = asyncio.ensure_future(anext(items))
    await until(lambda: a.waiting)
    clock.advance(0.31)  # past the idle timeout (0.3 s)
    with pytest.raises(UpstreamTimeout, match="next token"):
        await waiting
    assert b.calls == 0 and a.closed == 1


async def test_a_whole_answer_may_take_the_calls_total_time_not_only_the_first_token_timeout() -> None:
    a = Relaying("a", script=["stall@1"])
    gw, clock, _ = gateway([a])
    whole = asyncio.ensure_future(relayed(gw, ask(stream=False)))
    await until(lambda: a.waiting)
    clock.advance(0.5)  # past the first-token timeout (0.3 s), within the total (600 s)
    await until(lambda: clock.pending)
    assert not whole.done()
    clock.advance(600)
    with pytest.raises(UpstreamTimeout):
        await whole


async def test_closing_the_forwarded_stream_closes_the_upstream_call() -> None:
    a = Relaying("a", script=["stall@1"])
    gw, _, _ = gateway([a])
    items = gw.forward(ask())
    await anext(items)
    await items.aclose()
    assert a.closed == 1 and gw.resolve("chat").tiers[0][0].state.inflight == 0


async def test_the_breaker_counts_forwarded_failures_like_typed_ones() -> None:
    a, b = Relaying("a", default=UpstreamError("down")), Relaying("b")
    gw, _, _ = gateway([a], [b])
    for _ in range(2):
        await relayed(gw)
    # A typed request on the same target: its third failure (then b answers), and the breaker opens.
    assert (await collect(gw.stream(req()))).text.startswith("b0")
    assert a.calls == 3
    await relayed(gw)
    assert a.calls == 3


async def test_each_attempt_and_the_answers_usage_are_noted_on_the_request(notes: RequestRecord) -> None:
    a, b = Relaying("a", script=[UpstreamError("down")]), Relaying("b")
    gw, _, _ = gateway([a], [b])
    await relayed(gw)
    assert [(n.target, n.error) for n in notes.attempts] == [("a/m", "upstream_error"), ("b/m", None)]
    assert notes.usage == Usage(1, 3)


@pytest.mark.parametrize("path", ["stream", "complete", "forward"])
async def test_every_path_notes_its_attempts(notes: RequestRecord, path: str) -> None:
    a, b = Relaying("a", script=[UpstreamError("down")]), Relaying("b")
    gw, _, _ = gateway([a], [b])
    if path == "forward":
        await relayed(gw, ask(stream=False))
    elif path == "complete":
        await gw.complete(req())
    else:
        async for _ in gw.stream(req()):
            pass
    assert [n.target for n in notes.attempts] == ["a/m", "b/m"]
    assert notes.attempts[-1].error is None and notes.usage == Usage(1, 3)


async def test_a_client_gone_mid_answer_is_noted_as_cancelled(notes: RequestRecord) -> None:
    a = Relaying("a", script=["stall@1"])
    gw, _, _ = gateway([a])
    items = gw.forward(ask())
    await anext(items)
    await items.aclose()
    assert [(n.target, n.error, n.usage) for n in notes.attempts] == [("a/m", "cancelled", None)]


async def test_a_local_model_by_its_own_name_is_an_attempt_too(notes: RequestRecord) -> None:
    local = FakeBackend("local", ["tiny"])
    gw = Gateway([local])
    assert (await gw.complete(ChatRequest(model="tiny", messages=[]))).text == "local0 local1 local2 "
    assert [(n.target, n.error) for n in notes.attempts] == [("local/tiny", None)]
    assert notes.usage == Usage(2, 3)
    assert gw.resolve("tiny").tiers[0][0].state.inflight == 0
