"""Operator routes: ``GET /admin/providers`` (health, breaker state, cut-off marks, in-flight counts).
Behind the same API keys as the rest of the server."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lumbung.surfaces import openai as oai
from lumbung.surfaces.common import RequestLog, endpoint, state_of


@endpoint(oai.error_body)
async def providers(request: Request, entry: RequestLog) -> Response:
    return JSONResponse(state_of(request).gateway.status())


def routes() -> list[BaseRoute]:
    return [Route("/admin/providers", providers, methods=["GET"])]
