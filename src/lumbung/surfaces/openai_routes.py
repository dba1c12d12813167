"""HTTP routes of the OpenAI surface: /v1/chat/completions and /v1/models."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lumbung.errors import ApiError
from lumbung.surfaces import openai as oai
from lumbung.surfaces.common import (
    RequestLog,
    endpoint,
    read_body,
    sse_data,
    sse_response,
    state_of,
    unless_disconnected,
)
from lumbung.surfaces.keepalive import SSE_KEEPALIVE, Framing, keep_alive_of, start
from lumbung.surfaces.relay import interleave, relay
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
    for key in (
        "active_requests",
        "queued_requests",
        "parallel",
        "memory_bytes",
        "kv_cells",
        "kv_cells_used",
        "kv_bytes",
        "kv_bytes_used",
        "kv_bytes_per_sequence",
        "kv_cache_type",
        "memory_breakdown",
        "kv_bytes_f16",
        "context_length_trained",
        "expires_at",
        "prefix_cache",
        "adapters",  # a local model's LoRA adapters, each also served as a model
        "base_model",  # an adapter's model: the model it runs on, and the adapter
        "adapter",
        "speculative",  # its mode and acceptance rate (`lumbung ps` shows them)
        "fast_forwarded_tokens",
        "deterministic",
    ):
        if key in info.details:
            body[key] = info.details[key]
    return body


def process_memory() -> dict[str, int]:
    """The server process's resident memory and the anonymous part of it (not mapped from files: the
    weights mapped from a GGUF are file-backed), from /proc; empty where there is no /proc."""
    try:
        fields = dict(
            line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
        )
        return {
            "rss_bytes": int(fields["VmRSS"].split()[0]) * 1024,
            "anon_bytes": int(fields["RssAnon"].split()[0]) * 1024,
        }
    except (OSError, KeyError, ValueError):
        return {}


@openai_endpoint
async def list_models(request: Request, entry: RequestLog) -> Response:
    models = state_of(request).gateway.models()
    body = {"object": "list", "data": [model_body(m) for m in models], "process": process_memory()}
    return JSONResponse(body)


@openai_endpoint
async def get_model(request: Request, entry: RequestLog) -> Response:
    info = state_of(request).gateway.model(request.path_params["model"])
    return JSONResponse(model_body(info))


@openai_endpoint
async def chat_completions(request: Request, entry: RequestLog) -> Response:
    state = state_of(request)
    # Routes of OpenAI-compatible providers only never get here: openai_passthrough answers them.
    body = await read_body(request)
    chat, options = oai.parse_chat_request(body)
    state.note_extra_fields("openai.chat", options.extra_fields)
    model = state.gateway.resolve(chat.model).model
    entry.model = model
    choices = oai.choice_requests(chat, options.n)
    if not options.stream:  # whole answers: the gateway may fail over at any point before they are done
        results = await unless_disconnected(request, state.gateway.complete_all(choices))
        answer = oai.completion_body(chat, model, *results, logprobs=options.logprobs)
        entry.prompt_tokens = answer["usage"]["prompt_tokens"]
        entry.completion_tokens = answer["usage"]["completion_tokens"]
        return JSONResponse(answer)
    streams = [state.gateway.stream(r) for r in choices]
    writer = oai.ChunkWriter(chat, model, options.include_usage, options.n, options.logprobs)

    def render(index: int, chunk: Chunk) -> list[bytes]:
        return [sse_data(b) for b in writer.bodies(chunk, index)]

    def fail(exc: ApiError) -> bytes:
        return sse_data(oai.error_body(exc))

    async def rest(firsts: list[Chunk], early: bool) -> AsyncIterator[bytes]:
        # After the first byte, errors travel inside the stream; a stream never ends in silence.
        return relay(
            interleave(streams, firsts),
            render,
            fail,
            entry,
            tail=b"data: [DONE]\n\n",
            choices_per_prompt=options.n,
        )

    # The first chunks are awaited before answering (until then any failure is a plain HTTP error),
    # unless they take long: then SSE comments keep the connection alive (surfaces/keepalive.py).
    framing = Framing(rest, fail, beat=lambda: SSE_KEEPALIVE)
    return sse_response(await start(request, streams, keep_alive_of(state), framing, entry))


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    ]
