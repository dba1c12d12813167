"""HTTP routes of Ollama's native API: chat, generate, embed, embeddings, tags, show, ps, version.

(/api/pull and /api/delete belong to the model store's own routes.)
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from lumbung.engines.base import Collector
from lumbung.errors import ApiError, InvalidRequest, NotFound, UnsupportedParameter
from lumbung.surfaces import ollama as oll
from lumbung.surfaces.common import AppState, RequestLog, endpoint, read_body, state_of, unless_disconnected
from lumbung.surfaces.keepalive import Framing, keep_alive_of, start
from lumbung.surfaces.ollama_wire import ChatIn, EmbeddingsIn, EmbedIn, GenerateIn, ShowIn
from lumbung.surfaces.relay import interleave, relay
from lumbung.types import ChatRequest, Chunk, CompletionRequest, ModelInfo

ollama_endpoint = endpoint(oll.error_body)


# Python clients read NDJSON with str.splitlines semantics (httpx's iter_lines, which the ollama client
# uses): these break a line there, so inside JSON strings they go escaped (as Go's encoder does for two).
def _line(body: dict[str, Any]) -> bytes:
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").replace("\x85", "\\u0085")
    return text.encode() + b"\n"


def _model_info(state: AppState, name: str) -> ModelInfo:
    try:
        return state.gateway.model(name)
    except NotFound as exc:
        raise NotFound(f"model '{name}' not found", param="model") from exc


async def _answer(
    request: Request,
    entry: RequestLog,
    core: ChatRequest | CompletionRequest,
    call: oll.OllamaCall,
    chat: bool,
) -> Response:
    state = state_of(request)
    info = _model_info(state, core.model)
    entry.model = info.id
    writer = oll.LineWriter(info.id, call, chat)
    if call.unload:  # answered at once; the model unloads when its requests in flight have ended
        await state.gateway.unload_when_idle(core.model)
        return JSONResponse(writer.loaded("unload"))
    if call.keep_alive is not None:
        state.gateway.set_keep_alive(core.model, call.keep_alive)
    if call.load_only:
        await state.gateway.count_tokens(core)  # loads the model, as Ollama does for an empty request
        return JSONResponse(writer.loaded())
    if not call.stream:
        return JSONResponse(await unless_disconnected(request, _whole(state, core, writer, entry)))
    stream = state.gateway.stream(core)

    def render(index: int, chunk: Chunk) -> list[bytes]:
        body = writer.body(chunk)
        return [] if body is None else [_line(body)]

    def fail(exc: ApiError) -> bytes:
        return _line(oll.error_body(exc))

    async def answer(firsts: list[Chunk], early: bool) -> AsyncIterator[bytes]:
        return relay(interleave([stream], firsts), render, fail, entry)

    # NDJSON has no comments: a slow first token is waited out with lines of empty content, which
    # every Ollama client reads as a chunk that adds nothing (docs/api-compatibility.md).
    framing = Framing(answer, fail, beat=lambda: _line(writer.waiting()))
    events = await start(request, [stream], keep_alive_of(state), framing, entry)
    return StreamingResponse(events, media_type="application/x-ndjson")


async def _whole(
    state: AppState, core: ChatRequest | CompletionRequest, writer: oll.LineWriter, entry: RequestLog
) -> dict[str, Any]:
    if state.gateway.resolve(core.model).guarded:
        # A route: the gateway may fail over at any point before the answer is whole, so the time of
        # its first token is not known here (the timings count it all as generation).
        writer.timer.mark()
        done = await state.gateway.complete(core)
    else:  # a local model: its stream, for Ollama's prompt/generation timings
        collector = Collector()
        async for chunk in state.gateway.stream(core):
            writer.timer.mark()
            collector.add(chunk)
        done = collector.result()
    entry.prompt_tokens = done.usage.prompt_tokens
    entry.completion_tokens = done.usage.completion_tokens
    whole = Chunk(
        text=done.text,
        reasoning=done.reasoning,
        tool_calls=done.tool_calls,
        finish_reason=done.finish_reason,
        usage=done.usage,
        logprobs=done.logprobs,
    )
    body = writer.body(whole)
    assert body is not None
    return body


@ollama_endpoint
async def chat(request: Request, entry: RequestLog) -> Response:
    state = state_of(request)
    body = await read_body(request)
    wire = oll.parse(ChatIn, body)
    core, call = oll.parse_chat(wire, _model_info(state, wire.model))
    state.note_extra_fields("ollama.chat", call.extra_fields)
    return await _answer(request, entry, core, call, chat=True)


@ollama_endpoint
async def generate(request: Request, entry: RequestLog) -> Response:
    state = state_of(request)
    body = await read_body(request)
    wire = oll.parse(GenerateIn, body)
    core, call = oll.parse_generate(wire, _model_info(state, wire.model))
    state.note_extra_fields("ollama.generate", call.extra_fields)
    return await _answer(request, entry, core, call, chat=False)


@ollama_endpoint
async def embed(request: Request, entry: RequestLog) -> Response:
    state = state_of(request)
    wire = oll.parse(EmbedIn, await read_body(request))
    keep_alive = oll.keep_alive_seconds(wire.keep_alive)
    info = _model_info(state, wire.model)
    entry.model = info.id
    if keep_alive is not None:
        state.gateway.set_keep_alive(wire.model, keep_alive)
    inputs = ([wire.input] if wire.input else []) if isinstance(wire.input, str) else wire.input
    timer = oll.Timer(time.perf_counter())
    if not inputs:  # nothing to embed: load the model, as Ollama does
        await state.gateway.load(wire.model)
    result = await unless_disconnected(request, state.gateway.embed(wire.model, inputs)) if inputs else None
    vectors = result.vectors if result else []
    if wire.dimensions is not None and vectors and wire.dimensions != len(vectors[0]):
        raise UnsupportedParameter(
            f"dimensions must be {len(vectors[0])} for this model: its embeddings cannot be shortened",
            param="dimensions",
        )
    tokens = result.prompt_tokens if result else 0
    entry.prompt_tokens = tokens
    fields = timer.fields(None)
    return JSONResponse(
        {
            "model": info.id,
            "embeddings": vectors,
            "total_duration": fields["total_duration"],
            "load_duration": 0,
            "prompt_eval_count": tokens,
        }
    )


@ollama_endpoint
async def embeddings(request: Request, entry: RequestLog) -> Response:
    state = state_of(request)
    wire = oll.parse(EmbeddingsIn, await read_body(request))
    keep_alive = oll.keep_alive_seconds(wire.keep_alive)
    info = _model_info(state, wire.model)
    entry.model = info.id
    if keep_alive is not None:
        state.gateway.set_keep_alive(wire.model, keep_alive)
    if not wire.prompt:  # load the model, as Ollama does, and answer an empty vector
        await state.gateway.load(wire.model)
        return JSONResponse({"embedding": []})
    result = await unless_disconnected(request, state.gateway.embed(wire.model, [wire.prompt]))
    entry.prompt_tokens = result.prompt_tokens
    return JSONResponse({"embedding": result.vectors[0]})


@ollama_endpoint
async def tags(request: Request, entry: RequestLog) -> Response:
    return JSONResponse(oll.tags_body(state_of(request).gateway.models()))


@ollama_endpoint
async def show(request: Request, entry: RequestLog) -> Response:
    state = state_of(request)
    wire = oll.parse(ShowIn, await read_body(request))
    name = wire.model or wire.name
    if not name:
        raise InvalidRequest("model is required", param="model")
    return JSONResponse(oll.show_body(_model_info(state, name)))


@ollama_endpoint
async def ps(request: Request, entry: RequestLog) -> Response:
    return JSONResponse(oll.ps_body(state_of(request).gateway.models(), time.time()))


@ollama_endpoint
async def version(request: Request, entry: RequestLog) -> Response:
    return JSONResponse(oll.version_body())


async def root(request: Request) -> Response:
    """What Ollama answers at ``/``: clients and health checks probe it to find a server."""
    return PlainTextResponse("Ollama is running")


def routes() -> list[BaseRoute]:
    return [
        Route("/", root, methods=["GET", "HEAD"]),
        Route("/api/chat", chat, methods=["POST"]),
        Route("/api/generate", generate, methods=["POST"]),
        Route("/api/embed", embed, methods=["POST"]),
        Route("/api/embeddings", embeddings, methods=["POST"]),
        Route("/api/tags", tags, methods=["GET"]),
        Route("/api/show", show, methods=["POST"]),
        Route("/api/ps", ps, methods=["GET"]),
        Route("/api/version", version, methods=["GET"]),
    ]
