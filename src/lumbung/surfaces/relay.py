"""Streaming plumbing shared by the Anthropic, Ollama, completions and Responses surfaces.

A surface supplies how a chunk and an error are framed; this module owns the rules every stream
keeps: the first chunk is awaited before the answer starts (until then a failure is a plain HTTP
error; a slow one is waited out with keep-alives, surfaces/keepalive.py), later errors travel inside
the stream, a stream never ends in silence, and a client that
goes away cancels the backend.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence

from starlette.requests import Request

from lumbung.aio import cancel_and_wait, gather_or_cancel
from lumbung.engines.base import collect
from lumbung.errors import ApiError, InternalError
from lumbung.surfaces.common import RequestLog, unless_disconnected
from lumbung.types import Chunk, Completion

log = logging.getLogger(__name__)


async def relay(
    items: AsyncGenerator[tuple[int, Chunk], None],
    render: Callable[[int, Chunk], list[bytes]],
    fail: Callable[[ApiError], bytes],
    entry: RequestLog,
    *,
    head: list[bytes] | None = None,
    tail: bytes = b"",
    choices_per_prompt: int = 1,
) -> AsyncIterator[bytes]:
    """Frames tagged chunks (see ``interleave``) with ``render``; an error becomes ``fail(error)``."""
    try:
        for piece in head or []:
            yield piece
        async for index, chunk in items:
            for piece in render(index, chunk):
                yield piece
            if chunk.usage:
                if index % choices_per_prompt == 0:  # n choices of one prompt read it once
                    entry.prompt_tokens = (entry.prompt_tokens or 0) + chunk.usage.prompt_tokens
                entry.completion_tokens = (entry.completion_tokens or 0) + chunk.usage.completion_tokens
        if tail:
            yield tail
    except ApiError as exc:
        entry.error = exc.code or exc.type
        yield fail(exc)
    except BaseException as exc:
        if isinstance(exc, Exception):
            log.exception("stream %s failed", entry.id)
            entry.error = "internal_error"
            yield fail(InternalError(f"Internal error ({type(exc).__name__})."))
        else:  # cancelled: the client went away
            entry.error = "client_disconnected"
            raise
    finally:
        await items.aclose()
        entry.finish()


async def open_all(request: Request, streams: Sequence[AsyncGenerator[Chunk, None]]) -> list[Chunk]:
    """The first chunk of every stream (n > 1, several prompts); one failure closes them all, with
    its own error. The others are stopped and waited for before they are closed: a generator still
    waiting for its first chunk cannot be closed (``aclose()``: "already running")."""
    firsts: list[Chunk]
    try:
        if len(streams) == 1:  # the common case, without a task per stream
            firsts = [await unless_disconnected(request, anext(streams[0]))]
        else:
            firsts = await unless_disconnected(request, gather_or_cancel(anext(s) for s in streams))
    except StopAsyncIteration as exc:
        await _close_all(streams)
        raise InternalError("the backend produced no output") from exc
    except BaseException:
        await _close_all(streams)
        raise
    return firsts


async def _close_all(streams: Sequence[AsyncGenerator[Chunk, None]]) -> None:
    for stream in streams:
        await stream.aclose()


async def interleave(
    streams: Sequence[AsyncGenerator[Chunk, None]], firsts: list[Chunk]
) -> AsyncGenerator[tuple[int, Chunk], None]:
    """Chunks of several streams as they come, tagged with the stream's index; ends when all have
    finished. An error in any stream ends them all (raised here)."""
    queue: asyncio.Queue[tuple[int, Chunk | BaseException | None]] = asyncio.Queue()

    async def pump(index: int, stream: AsyncGenerator[Chunk, None]) -> None:
        try:
            async for chunk in stream:
                await queue.put((index, chunk))
            await queue.put((index, None))
        except Exception as exc:
            await queue.put((index, exc))

    for index, first in enumerate(firsts):
        queue.put_nowait((index, first))
    open_ = {i for i, first in enumerate(firsts) if first.finish_reason is None}
    tasks = [asyncio.ensure_future(pump(i, streams[i])) for i in open_]
    pending_firsts = len(firsts)
    try:
        while pending_firsts or open_:
            index, item = await queue.get()
            if pending_firsts:
                pending_firsts -= 1
            if item is None:
                if index in open_:
                    raise InternalError("the backend's stream ended early")
                continue
            if isinstance(item, BaseException):
                raise item
            if item.finish_reason is not None:
                open_.discard(index)
            yield index, item
    finally:
        await cancel_and_wait(tasks)
        await _close_all(streams)


async def collect_all(streams: Sequence[AsyncGenerator[Chunk, None]]) -> list[Completion]:
    """Every stream collected (n > 1, several prompts); if one fails, the others are stopped too."""
    try:
        return await gather_or_cancel(collect(s) for s in streams)
    finally:
        await _close_all(streams)
