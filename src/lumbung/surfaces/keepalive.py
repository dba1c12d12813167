"""Streams whose first chunk is slow: the answer starts without it, and keeps the connection alive.

Reading a long prompt (an agent's 18k-token first turn on a small CPU) takes minutes before the first
token. Clients give up on a silent connection (Claude Code after ~300 s, proxies after 60 s), so
once the first chunk has been awaited for ``after`` seconds the answer starts anyway: headers, the
surface's ``early`` bytes, then its ``beat`` every ``every`` seconds until the first chunk exists
(an Anthropic ``ping`` event, an SSE comment, an Ollama line with empty content; docs/api-compatibility.md).
A first chunk that arrives in time answers as before, so fast failures (a bad request, a full
queue) stay plain HTTP errors; a failure after an early start is the surface's own error event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from lumbung.aio import cancel_and_wait
from lumbung.clock import TimerClock
from lumbung.errors import ApiError, InternalError
from lumbung.surfaces.common import AppState, RequestLog
from lumbung.surfaces.relay import open_all
from lumbung.types import Chunk

log = logging.getLogger(__name__)

SSE_KEEPALIVE = b": keep-alive\n\n"  # a comment line: every SSE parser skips it


@dataclass(frozen=True)
class KeepAlive:
    """Seconds of silence before the answer starts early, and between beats; 0 turns it off."""

    every: float
    clock: TimerClock


def keep_alive_of(state: AppState) -> KeepAlive:
    return KeepAlive(state.settings.stream_keepalive, state.gateway.clock)


@dataclass(frozen=True)
class Framing:
    """How one surface keeps a stream alive: ``early`` opens the answer (awaited only when the answer
    starts before its first chunk), ``beat`` is sent each time the wait goes on, ``fail`` frames an
    error, and ``answer`` renders the rest once the first chunks exist (``early``: whether the
    ``early`` bytes were sent, so the surface does not open its answer twice)."""

    answer: Callable[[list[Chunk], bool], Awaitable[AsyncIterator[bytes]]]
    fail: Callable[[ApiError], bytes]
    beat: Callable[[], bytes]
    early: Callable[[], Awaitable[list[bytes]]] | None = None


async def start(
    request: Request,
    streams: Sequence[AsyncGenerator[Chunk, None]],
    keep: KeepAlive,
    framing: Framing,
    entry: RequestLog,
) -> AsyncIterator[bytes]:
    """The answer's bytes: rendered from the first chunks if they come within ``keep.every``
    seconds (until then a failure raises, a plain HTTP error), else started early and kept alive."""
    entry.stream = True
    if keep.every <= 0:
        return await framing.answer(await open_all(request, streams), False)
    opening = asyncio.ensure_future(open_all(request, streams))
    try:
        settled = await _settled(opening, keep)
    except BaseException:  # the client went away: open_all closes the streams
        await cancel_and_wait([opening])
        raise
    if settled:
        return await framing.answer(opening.result(), False)
    return _kept_alive(opening, streams, keep, framing, entry)


async def _settled(task: asyncio.Future[list[Chunk]], keep: KeepAlive) -> bool:
    """Whether ``task`` finished within ``keep.every`` seconds on the clock."""
    tick: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def ring() -> None:
        if not tick.done():
            tick.set_result(None)

    timer = keep.clock.call_at(keep.clock() + keep.every, ring)
    try:
        waits: list[asyncio.Future[Any]] = [task, tick]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        tick.cancel()
    return task.done()


async def _kept_alive(
    opening: asyncio.Future[list[Chunk]],
    streams: Sequence[AsyncGenerator[Chunk, None]],
    keep: KeepAlive,
    framing: Framing,
    entry: RequestLog,
) -> AsyncIterator[bytes]:
    firsts: list[Chunk] | None = None
    try:
        early = await framing.early() if framing.early is not None else []
        for piece in early:
            yield piece
        yield framing.beat()
        while not await _settled(opening, keep):
            yield framing.beat()
        firsts = opening.result()
        rest = await framing.answer(firsts, framing.early is not None)
    except ApiError as exc:
        entry.error = exc.code or exc.type
        yield framing.fail(exc)
        return
    except Exception as exc:
        log.exception("stream %s failed", entry.id)
        entry.error = "internal_error"
        yield framing.fail(InternalError(f"Internal error ({type(exc).__name__})."))
        return
    except BaseException:  # cancelled or closed: the client went away
        entry.error = "client_disconnected"
        raise
    finally:
        if firsts is None:  # the answer never began: nothing else will close the streams
            await cancel_and_wait([opening])
            for stream in streams:
                await stream.aclose()
    async for piece in rest:
        yield piece
