"""HTTP routes of the OpenAI surface: /v1/chat/completions and /v1/models."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lumbung.engines.base import collect
from lumbung.errors import ApiError, InternalError
from lumbung.surfaces import openai as oai
from lumbung.surfaces import openai_passthrough
from lumbung.surfaces.common import (
    RequestLog,
    endpoint,
    read_body,
    sse_data,
    sse_response,
    state_of,
    unless_disconnected,
)
from lumbung.types import Chunk, ModelInfo

log = logging.getLogger(__name__)
openai_endpoint = endpoint(oai.error_body)


def model_body(info: ModelInfo) -> dict[str, Any]:
    body = {
        "id": info.id,
        "object": "model",
        "created": info.created,
        "owned_by": info.owned_by,
        "aliases": info.aliases,
        "context_length": info.context_length,
        "loaded": info.loaded,
    }
    for key in ("active_requests", "queued_requests"):
        if key in info.details:
            body[key] = info.details[key]
    return body


@openai_endpoint
async def list_models(request: Request, entry: RequestLog) -> Response:
    models = state_of(request).gateway.models()
    return JSONResponse({"object": "list", "data": [model_body(m) for m in models]})


@openai_endpoint
async def get_model(request: Request, entry: RequestLog) -> Response:
    info = state_of(request).gateway.model(request.path_params["model"])
    return JSONResponse(model_body(info))


@openai_endpoint
async def chat_completions(request: Request, entry: RequestLog) -> Response:
    state = state_of(request)
    body = await read_body(request, state.settings.max_body_bytes)
    passed = await openai_passthrough.forward(request, state, body, entry)
    if passed is not None:  # a route of OpenAI-compatible providers only: bytes pass through
        return passed
    chat, options = oai.parse_chat_request(body)
    state.note_extra_fields("openai.chat", options.extra_fields)
    model = state.gateway.resolve(chat.model).model
    entry.model = model
    stream = state.gateway.stream(chat)
    if not options.stream:
        completion = await unless_disconnected(request, collect(stream))
        entry.prompt_tokens = completion.usage.prompt_tokens
        entry.completion_tokens = completion.usage.completion_tokens
        return JSONResponse(oai.completion_body(chat, model, completion))
    # The first chunk is awaited before answering: until then any failure is a plain HTTP error.
    try:
        first = await unless_disconnected(request, anext(stream))
    except StopAsyncIteration as exc:
        raise InternalError("the backend produced no output") from exc
    except BaseException:
        await stream.aclose()
        raise
    entry.stream = True
    writer = oai.ChunkWriter(chat, model, options.include_usage)
    return sse_response(_events(stream, first, writer, entry))


async def _events(
    stream: AsyncGenerator[Chunk, None], first: Chunk, writer: oai.ChunkWriter, entry: RequestLog
) -> AsyncIterator[bytes]:
    """After the first byte, errors travel inside the stream; a stream never ends in silence."""
    chunk = first
    try:
        while True:
            for body in writer.bodies(chunk):
                yield sse_data(body)
            if chunk.finish_reason is not None:
                if chunk.usage:
                    entry.prompt_tokens = chunk.usage.prompt_tokens
                    entry.completion_tokens = chunk.usage.completion_tokens
                break
            chunk = await anext(stream)
        yield b"data: [DONE]\n\n"
    except ApiError as exc:
        entry.error = exc.code or exc.type
        yield sse_data(oai.error_body(exc))
    except StopAsyncIteration:
        entry.error = "truncated"
        yield sse_data(oai.error_body(InternalError("the backend's stream ended early")))
    except BaseException as exc:
        if isinstance(exc, Exception):
            log.exception("stream %s failed", entry.id)
            entry.error = "internal_error"
            yield sse_data(oai.error_body(InternalError(f"Internal error ({type(exc).__name__}).")))
        else:  # cancelled: the client went away
            entry.error = "client_disconnected"
            raise
    finally:
        await stream.aclose()
        entry.finish()


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    ]
