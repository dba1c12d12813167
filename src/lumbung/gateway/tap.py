"""Where recording and shadowing see live traffic: the gateway asks its ``Tap`` about each request it
routes, and a request the tap wants gets a ``Watch`` that sees its answer pass (a stream's chunks or
bytes, or a whole completion). The tap (proof/tap.py) does everything else off the request's path; the
gateway only hands items over, so a watched answer is neither delayed nor changed."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol, TypeVar

from lumbung.engines.base import ForwardRequest
from lumbung.gateway.state import Route
from lumbung.types import ChatRequest, Completion, CompletionRequest

T = TypeVar("T")


class Watch(Protocol):
    def add(self, item: object) -> None:
        """One item of the answer as it goes to the client: a ``Chunk``, or ``bytes`` when forwarded."""
        ...

    def whole(self, completion: Completion) -> None:
        """The answer, when it came whole."""
        ...


class Tap(Protocol):
    def watch(
        self, route: Route, request: ChatRequest | CompletionRequest | ForwardRequest, stream: bool
    ) -> Watch | None:
        """A watch for this request's answer, or None (most requests): decided in microseconds.
        ``stream``: whether the answer is asked for as a stream or whole."""
        ...


async def tee(items: AsyncGenerator[T, None], watch: Watch) -> AsyncGenerator[T, None]:
    """``items`` unchanged, each shown to ``watch`` on its way out."""
    try:
        async for item in items:
            watch.add(item)
            yield item
    finally:
        # Closed here, not left to the collector: the attempt inside must close when this does.
        await items.aclose()
