"""Streaming plumbing shared by the Anthropic, Ollama, completions and Responses surfaces.

A surface supplies how a chunk and an error are framed; this module owns the rules every stream
keeps: the first chunk is awaited before the answer starts (until then a failure is a plain HTTP
error), later errors travel inside the stream, a stream never ends in silence, and a client that
goes away cancels the backend.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from starlette.requests import Request

from lumbung.errors import ApiError, InternalError
from lumbung.surfaces.common import RequestLog, unless_disconnected
from lumbung.types import Chunk

log = logging.getLogger(__name__)


async def first_chunk(request: Request, stream: AsyncIterator[Chunk]) -> Chunk:
    try:
        chunk: Chunk = await unless_disconnected(request, anext(stream))
    except StopAsyncIteration as exc:
        raise InternalError("the backend produced no output") from exc
    except BaseException:
        await stream.aclose()  # type: ignore[attr-defined]
        raise
    return chunk


async def relay(
    stream: AsyncIterator[Chunk],
    first: Chunk,
    render: Callable[[Chunk], list[bytes]],
    fail: Callable[[ApiError], bytes],
    entry: RequestLog,
    *,
    head: list[bytes] | None = None,
    tail: bytes = b"",
) -> AsyncIterator[bytes]:
    """Frames ``first`` and the rest of ``stream`` with ``render``; an error becomes ``fail(error)``."""
    chunk = first
    try:
        for piece in head or []:
            yield piece
        while True:
            for piece in render(chunk):
                yield piece
            if chunk.finish_reason is not None:
                if chunk.usage:
                    entry.prompt_tokens = chunk.usage.prompt_tokens
                    entry.completion_tokens = chunk.usage.completion_tokens
                break
            chunk = await anext(stream)
        if tail:
            yield tail
    except ApiError as exc:
        entry.error = exc.code or exc.type
        yield fail(exc)
    except StopAsyncIteration:
        entry.error = "truncated"
        yield fail(InternalError("the backend's stream ended early"))
    except BaseException as exc:
        if isinstance(exc, Exception):
            log.exception("stream %s failed", entry.id)
            entry.error = "internal_error"
            yield fail(InternalError(f"Internal error ({type(exc).__name__})."))
        else:  # cancelled: the client went away
            entry.error = "client_disconnected"
            raise
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
        entry.finish()
