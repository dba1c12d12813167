"""Operator routes: ``GET /admin/providers`` (health, breaker state, cut-off marks, in-flight counts,
and with ``?probe=1`` whether each provider answers right now) and ``GET /metrics`` (Prometheus,
docs/observability.md). Operator keys only (``admin_api_keys``) when keys are configured."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lumbung.errors import NotFound
from lumbung.observe.metrics import CONTENT_TYPE
from lumbung.surfaces import openai as oai
from lumbung.surfaces.common import RequestLog, endpoint, state_of


@endpoint(oai.error_body, admin=True)
async def providers(request: Request, entry: RequestLog) -> Response:
    """``?probe=1`` also asks each provider now whether it answers (`reachable`)."""
    gateway = state_of(request).gateway
    body = gateway.status()
    if request.query_params.get("probe") in ("1", "true"):
        reachable = await gateway.probe()
        for provider in body["providers"]:
            provider["reachable"] = reachable.get(provider["name"])
    return JSONResponse(body)


@endpoint(oai.error_body, admin=True)
async def metrics(request: Request, entry: RequestLog) -> Response:
    state = state_of(request)
    if state.metrics is None:
        raise NotFound("Metrics are not kept by this server.")
    state.outbox.drain()  # the requests that ended a moment ago are counted (record.Outbox)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/providers", providers, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
