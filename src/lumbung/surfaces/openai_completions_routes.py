"""HTTP route of OpenAI's legacy completions: POST /v1/completions."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lumbung.errors import ApiError
from lumbung.surfaces import openai as oai
from lumbung.surfaces import openai_completions as oc
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
from lumbung.types import Chunk

openai_endpoint = endpoint(oai.error_body)


@openai_endpoint
async def completions(request: Request, entry: RequestLog) -> Response:
    state = state_of(request)
    body = await read_body(request)
    call = oc.parse_completion_request(body)
    state.note_extra_fields("openai.completions", call.extra_fields)
    model = state.gateway.resolve(call.requests[0].model).model
    entry.model = model
    if not call.stream:  # whole answers: the gateway may fail over at any point before they are done
        results = await unless_disconnected(request, state.gateway.complete_all(call.requests))
        answer = oc.completion_body(call, model, results)
        entry.prompt_tokens = answer["usage"]["prompt_tokens"]
        entry.completion_tokens = answer["usage"]["completion_tokens"]
        return JSONResponse(answer)
    streams = [state.gateway.stream(r) for r in call.requests]
    writer = oc.CompletionChunkWriter(call, model)

    def render(index: int, chunk: Chunk) -> list[bytes]:
        return [sse_data(b) for b in writer.bodies(index, chunk)]

    def fail(exc: ApiError) -> bytes:
        return sse_data(oai.error_body(exc))

    async def rest(firsts: list[Chunk], early: bool) -> AsyncIterator[bytes]:
        return relay(
            interleave(streams, firsts),
            render,
            fail,
            entry,
            tail=b"data: [DONE]\n\n",
            choices_per_prompt=call.n,
        )

    framing = Framing(rest, fail, beat=lambda: SSE_KEEPALIVE)
    return sse_response(await start(request, streams, keep_alive_of(state), framing, entry))


def routes() -> list[BaseRoute]:
    return [Route("/v1/completions", completions, methods=["POST"])]
