"""A stream whose first token is slow (a long prompt being read) starts early and is kept alive in each
API's own framing, and the real SDKs' streaming parsers read it as an ordinary answer. In process, on a
fake clock: the wait is stepped, never slept."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest
import uvicorn
from starlette.types import Message, Receive, Scope, Send

from lumbung.clock import FakeClock
from lumbung.errors import UpstreamError
from lumbung.surfaces.http import SERVER_OPTIONS
from tests.support.fake_backend import Slow
from tests.support.inprocess import MODEL, InProcess, in_process
from tests.support.server import free_port
from tests.support.surfaces import ANTHROPIC_MESSAGES, SURFACES, Surface

surfaces = pytest.mark.parametrize("surface", SURFACES, ids=[s.name for s in SURFACES])
EVERY = 15.0
ANSWER = "local0 local1 local2 "  # the fake backend's answer once the gate opens
EMPTY_TEXT = b'"delta":{"type":"text_delta","text":""}'


async def until(condition: Any) -> None:
    """Let the loop run until ``condition()`` holds (a state to reach, never a duration)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition was never reached")


class Reader:
    """A streamed answer read in the background, so the test can step the clock meanwhile."""

    def __init__(self, lb: InProcess, surface: Surface) -> None:
        request = lb.client.build_request(
            "POST", surface.path, json=surface.body(MODEL, stream=True), headers=surface.headers
        )
        self.response: httpx.Response | None = None
        self.raw = b""
        self.task = asyncio.ensure_future(self._read(lb.client, request))

    async def _read(self, client: httpx.AsyncClient, request: httpx.Request) -> None:
        self.response = await client.send(request, stream=True)
        async for piece in self.response.aiter_raw():
            self.raw += piece
        await self.response.aclose()


def beats(surface: Surface, raw: bytes) -> int:
    if surface.name.startswith("ollama"):
        events = surface.parse(raw)
        key = "message" if surface.name == "ollama.chat" else None
        return sum(
            1
            for e in events
            if e["data"].get("done") is False
            and (e["data"]["message"]["content"] if key else e["data"]["response"]) == ""
        )
    if surface.name == "anthropic.messages":
        return raw.count(b"event: ping\n") + raw.count(EMPTY_TEXT)
    return raw.count(b": keep-alive\n\n")


@surfaces
async def test_a_slow_first_token_starts_the_answer_and_keeps_it_alive(
    tmp_path: Path, surface: Surface
) -> None:
    clock = FakeClock()
    gate = asyncio.Event()
    async with in_process(tmp_path, clock=clock, stream_keepalive=EVERY) as lb:
        lb.local.then(Slow(gate))
        reader = Reader(lb, surface)
        await until(lambda: lb.local.opened == 1)
        clock.advance(EVERY - 1)
        await until(lambda: clock.pending >= 1)
        assert reader.response is None  # still within the wait: a failure now would be a plain error
        clock.advance(1)
        await until(lambda: reader.response is not None and beats(surface, reader.raw) == 1)
        assert reader.response is not None and reader.response.status_code == 200
        clock.advance(EVERY)
        await until(lambda: beats(surface, reader.raw) == 2)
        gate.set()
        await reader.task
    events = surface.parse(reader.raw)
    assert surface.is_done(events), events
    assert not any(surface.is_error_event(e) for e in events)
    assert surface.text_of(events) == ANSWER
    assert lb.local.open_streams == 0


@surfaces
async def test_a_failure_after_an_early_start_is_an_error_event(tmp_path: Path, surface: Surface) -> None:
    clock = FakeClock()
    gate = asyncio.Event()
    async with in_process(tmp_path, clock=clock, stream_keepalive=EVERY) as lb:
        lb.local.then(Slow(gate, UpstreamError("the backend broke")))
        reader = Reader(lb, surface)
        await until(lambda: lb.local.opened == 1)
        clock.advance(EVERY)
        await until(lambda: reader.response is not None and beats(surface, reader.raw) == 1)
        gate.set()
        await reader.task
    events = surface.parse(reader.raw)
    assert any(surface.is_error_event(e) for e in events), events
    assert not surface.is_done(events)
    assert lb.local.open_streams == 0


@surfaces
async def test_a_client_hang_up_while_kept_alive_closes_the_backend_stream(
    tmp_path: Path, surface: Surface
) -> None:
    clock = FakeClock()
    async with in_process(tmp_path, clock=clock, stream_keepalive=EVERY) as lb:
        lb.local.then(Slow(asyncio.Event()))
        reader = Reader(lb, surface)
        await until(lambda: lb.local.opened == 1)
        clock.advance(EVERY)
        await until(lambda: reader.response is not None and beats(surface, reader.raw) == 1)
        reader.task.cancel()
        assert reader.response is not None
        await reader.response.aclose()
        await until(lambda: lb.local.open_streams == 0)


@surfaces
async def test_keep_alive_off_waits_for_the_first_token(tmp_path: Path, surface: Surface) -> None:
    clock = FakeClock()
    gate = asyncio.Event()
    async with in_process(tmp_path, clock=clock, stream_keepalive=0) as lb:
        lb.local.then(Slow(gate))
        reader = Reader(lb, surface)
        await until(lambda: lb.local.opened == 1)
        clock.advance(10 * EVERY)
        for _ in range(100):
            await asyncio.sleep(0)
        assert reader.response is None
        gate.set()
        await reader.task
    ordinary = 1 if surface.name == "anthropic.messages" else 0  # Anthropic's ping after message_start
    assert beats(surface, reader.raw) == ordinary
    assert surface.is_done(surface.parse(reader.raw))


class Served:
    """The app behind a real uvicorn server on 127.0.0.1 (on the test's loop, so the fake clock
    still rules it), keeping a copy of every answer's bytes as they leave."""

    def __init__(self, lb: InProcess) -> None:
        self.raw = b""
        self.port = free_port()

        async def tee(scope: Scope, receive: Receive, send: Send) -> None:
            async def copied(message: Message) -> None:
                if message["type"] == "http.response.body":
                    self.raw += message.get("body", b"")
                await send(message)

            await lb.app(scope, receive, copied)

        config = uvicorn.Config(
            tee, host="127.0.0.1", port=self.port, lifespan="off", log_level="error", **SERVER_OPTIONS
        )
        self.server = uvicorn.Server(config)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Served:
        self.task = asyncio.ensure_future(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        await self.task


async def _anthropic_message(base: str) -> Any:
    async with (
        anthropic.AsyncAnthropic(base_url=base, api_key="k") as client,
        client.messages.stream(
            model=MODEL, max_tokens=32, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        message = await stream.get_final_message()
    assert message.stop_reason == "end_turn"
    return message


async def _anthropic(base: str) -> str:
    message = await _anthropic_message(base)
    return "".join(b.text for b in message.content if b.type == "text")


def _openai(base: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="k")


async def _openai_chat(base: str) -> str:
    async with (
        _openai(base) as client,
        client.chat.completions.stream(model=MODEL, messages=[{"role": "user", "content": "hi"}]) as stream,
    ):
        done = await stream.get_final_completion()
    return done.choices[0].message.content or ""


async def _openai_completions(base: str) -> str:
    async with _openai(base) as client:
        stream = await client.completions.create(model=MODEL, prompt="hi", stream=True)
        return "".join([chunk.choices[0].text async for chunk in stream])


async def _openai_responses(base: str) -> str:
    async with (
        _openai(base) as client,
        client.responses.stream(model=MODEL, input="hi", store=False) as stream,
    ):
        done = await stream.get_final_response()
    assert done.status == "completed"
    return done.output_text


async def _ollama_chat(base: str) -> str:
    client = ollama.AsyncClient(host=base)
    try:
        parts = await client.chat(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)
        return "".join([part.message.content or "" async for part in parts])
    finally:
        await client.close()


async def _ollama_generate(base: str) -> str:
    client = ollama.AsyncClient(host=base)
    try:
        parts = await client.generate(model=MODEL, prompt="hi", stream=True)
        return "".join([part.response async for part in parts])
    finally:
        await client.close()


SDK_CALLS: dict[str, Callable[[str], Awaitable[str]]] = {
    "openai.chat": _openai_chat,
    "openai.completions": _openai_completions,
    "openai.responses": _openai_responses,
    "anthropic.messages": _anthropic,
    "ollama.chat": _ollama_chat,
    "ollama.generate": _ollama_generate,
}


@surfaces
async def test_the_sdks_read_a_kept_alive_stream_as_an_ordinary_answer(
    tmp_path: Path, surface: Surface
) -> None:
    """The real SDKs' own streaming parsers (and their accumulators, where they have one)."""
    clock = FakeClock()
    gate = asyncio.Event()
    async with in_process(tmp_path, clock=clock, stream_keepalive=EVERY) as lb:
        lb.local.then(Slow(gate))
        async with Served(lb) as served:
            task = asyncio.ensure_future(SDK_CALLS[surface.name](served.base_url))
            await until(lambda: lb.local.opened == 1)
            clock.advance(EVERY)
            await until(lambda: beats(surface, served.raw) == 1)
            clock.advance(EVERY)
            await until(lambda: beats(surface, served.raw) == 2)
            gate.set()
            assert await task == ANSWER
    assert lb.local.open_streams == 0


async def test_anthropic_beats_become_content_events_before_claude_codes_stall_watchdog(
    tmp_path: Path,
) -> None:
    """Claude Code ends a stream after 300 s with no event but pings; past two minutes the beats are
    empty text deltas, in a text block the answer then continues (the SDK's message: one text block)."""
    clock = FakeClock()
    gate = asyncio.Event()
    async with in_process(tmp_path, clock=clock, stream_keepalive=EVERY) as lb:
        lb.local.then(Slow(gate))
        async with Served(lb) as served:
            task = asyncio.ensure_future(_anthropic_message(served.base_url))
            await until(lambda: lb.local.opened == 1)
            for beat in range(1, 13):  # three minutes
                clock.advance(EVERY)
                await until(lambda n=beat: beats(ANTHROPIC_MESSAGES, served.raw) == n)  # type: ignore[misc]
            gate.set()
            message = await task
    events = ANTHROPIC_MESSAGES.parse(served.raw)
    names = [e["event"] for e in events]
    assert names.count("ping") == 8  # 120 s of pings, then content events
    assert served.raw.count(EMPTY_TEXT) == 4
    assert names.count("content_block_start") == 1
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", ANSWER)]
