"""The streaming rules every surface shares (surfaces/relay.py), over generators that misbehave on
purpose: one choice refused while the others are still waiting for their first token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest
from starlette.requests import Request
from starlette.types import Message

from lumbung.errors import RateLimited
from lumbung.surfaces.relay import collect_all, open_all
from lumbung.types import Chunk


def _request() -> Request:
    async def receive() -> Message:
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    return Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)


class Choice:
    """A backend stream that records whether it was closed; ``refuse`` fails its first step at once
    (a full queue), otherwise it waits for a first token that never comes."""

    def __init__(self, refuse: bool) -> None:
        self.refuse = refuse
        self.started = asyncio.Event()
        self.closed = False

    async def stream(self) -> AsyncGenerator[Chunk, None]:
        try:
            self.started.set()
            if self.refuse:
                raise RateLimited("The model's queue is full.", retry_after=3)
            await asyncio.Event().wait()
            yield Chunk(text="never")
        finally:
            self.closed = True


async def test_a_refused_choice_fails_the_request_with_its_own_error_and_closes_the_rest() -> None:
    # The waiting choices' generators were still running when they were closed: "aclose(): asynchronous
    # generator is already running" replaced the 429 with a 500.
    choices = [Choice(refuse=False), Choice(refuse=False), Choice(refuse=True)]
    with pytest.raises(RateLimited) as err:
        await open_all(_request(), [c.stream() for c in choices])
    assert err.value.status == 429 and err.value.retry_after == 3
    assert all(c.closed for c in choices)


async def test_a_refused_choice_stops_the_others_when_collecting_whole_answers() -> None:
    choices = [Choice(refuse=False), Choice(refuse=True)]
    with pytest.raises(RateLimited):
        await collect_all([c.stream() for c in choices])
    assert all(c.closed for c in choices)
