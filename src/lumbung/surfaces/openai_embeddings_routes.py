"""HTTP route of OpenAI's embeddings: POST /v1/embeddings."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lumbung.surfaces import openai as oai
from lumbung.surfaces import openai_embeddings as oe
from lumbung.surfaces.common import RequestLog, endpoint, read_body, state_of, unless_disconnected

openai_endpoint = endpoint(oai.error_body)


@openai_endpoint
async def embeddings(request: Request, entry: RequestLog) -> Response:
    state = state_of(request)
    body = await read_body(request)
    call = oe.parse_embedding_request(body)
    state.note_extra_fields("openai.embeddings", call.extra_fields)
    model = state.gateway.resolve(call.model).model
    entry.model = model
    result = await unless_disconnected(request, state.gateway.embed(call.model, call.inputs))
    oe.check_dimensions(call, result)
    entry.prompt_tokens = result.prompt_tokens
    return JSONResponse(oe.embeddings_body(call, model, result))


def routes() -> list[BaseRoute]:
    return [Route("/v1/embeddings", embeddings, methods=["POST"])]
