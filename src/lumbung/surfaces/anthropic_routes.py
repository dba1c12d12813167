"""HTTP routes of the Anthropic surface: /v1/messages and /v1/messages/count_tokens."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lumbung.errors import ApiError, UnsupportedParameter
from lumbung.surfaces import anthropic as ant
from lumbung.surfaces.common import (
    RequestLog,
    endpoint,
    read_body,
    sse_event,
    sse_response,
    state_of,
    unless_disconnected,
)
from lumbung.surfaces.keepalive import Framing, keep_alive_of, start
from lumbung.surfaces.relay import interleave, relay
from lumbung.types import Chunk, Usage

anthropic_endpoint = endpoint(ant.error_body)
PING = sse_event("ping", {"type": "ping"})
PINGS_FOR = 120.0  # seconds of a slow first token kept alive by pings alone


def _check_version(request: Request) -> None:
    ant.check_version(request.headers.get("anthropic-version"))


def _with_request_id(response: Response, entry: RequestLog) -> Response:
    response.headers["request-id"] = entry.id
    return response


@anthropic_endpoint
async def messages(request: Request, entry: RequestLog) -> Response:
    _check_version(request)
    state = state_of(request)
    body = await read_body(request)
    chat, options = ant.parse_messages_request(body)
    state.note_extra_fields("anthropic.messages", options.extra_fields)
    model = state.gateway.resolve(chat.model).model
    entry.model = model
    if not options.stream:
        completion = await unless_disconnected(request, state.gateway.complete(chat))
        entry.prompt_tokens = completion.usage.prompt_tokens
        entry.completion_tokens = completion.usage.completion_tokens
        return _with_request_id(JSONResponse(ant.message_body(chat, model, completion, options)), entry)
    stream = state.gateway.stream(chat)
    writer = ant.EventWriter(chat, model, options)

    async def counted() -> Usage:
        try:
            return Usage(await state.gateway.count_tokens(chat))
        except UnsupportedParameter:
            return Usage()  # a route whose providers cannot count: message_delta has the usage

    async def early() -> list[bytes]:
        # Anthropic's own order: message_start (the input as counted), then pings while it works.
        events = writer.start(await counted())
        return [sse_event(name, data) for name, data in events if name != "ping"]

    def render(index: int, chunk: Chunk) -> list[bytes]:
        return [sse_event(name, data) for name, data in writer.events(chunk)]

    def fail(exc: ApiError) -> bytes:
        return sse_event("error", ant.error_body(exc))

    async def answer(firsts: list[Chunk], started: bool) -> AsyncIterator[bytes]:
        head: list[bytes] = []
        if not started:
            # message_start reports the input before any output: the local engine says it (cache
            # reuse included) on the first chunk; for other backends it is counted.
            prompt = firsts[0].prompt_usage
            if prompt is None:
                try:
                    prompt = await counted()
                except BaseException:
                    await stream.aclose()
                    raise
            head = [sse_event(name, data) for name, data in writer.start(prompt)]
        return relay(interleave([stream], firsts), render, fail, entry, head=head)

    keep = keep_alive_of(state)
    beats = itertools.count(1)

    def beat() -> bytes:
        # Pings, as Anthropic's API sends them; past PINGS_FOR seconds, empty text deltas: Claude
        # Code ends a stream after 300 s without an event other than a ping.
        if next(beats) * keep.every <= PINGS_FOR:
            return PING
        return b"".join(sse_event(name, data) for name, data in writer.idle())

    framing = Framing(answer, fail, beat=beat, early=early)
    events = await start(request, [stream], keep, framing, entry)
    return _with_request_id(sse_response(events), entry)


@anthropic_endpoint
async def count_tokens(request: Request, entry: RequestLog) -> Response:
    _check_version(request)
    state = state_of(request)
    body = await read_body(request)
    chat = ant.parse_count_tokens(body)
    entry.model = state.gateway.resolve(chat.model).model
    tokens = await state.gateway.count_tokens(chat)
    entry.prompt_tokens = tokens
    return _with_request_id(JSONResponse({"input_tokens": tokens}), entry)


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    ]
