"""``/ui``: the dashboard's pages and assets (no key: they carry no data), and the JSON and event
endpoints its scripts read (operator keys only when keys are configured, like ``/admin/*``).

    GET  /ui, /ui/PAGE            the page shells (ui/pages.py)
    GET  /ui/assets/NAME?v=HASH   scripts and styles (ui/static.py), cached for good by their hash
    GET  /ui/api/session          whether the key sent is an operator's (the login form asks)
    GET  /ui/api/overview         providers, routes, failover timeline (ui/data.py)
    GET  /ui/api/models           the store and the local models
    GET  /ui/api/events           the two above as server-sent events, sent again when they change
    POST /ui/api/verify           re-hash a stored model's files (``lumbung verify``)
    GET  /ui/api/usage            the usage ledger in time buckets per group (ui/usage.py)
    GET  /ui/api/reports          the migration reports under HOME/reports (ui/reports.py)
    GET  /ui/api/reports/NAME     one report's JSON; NAME.html its HTML page, as a download

Pulls and removals go through Ollama's ``/api/pull`` and ``/api/delete``, chats through
``/v1/chat/completions``: the dashboard has no second copy of them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from lumbung import errors
from lumbung.accounts.usage import BY, parse_since
from lumbung.store.serving import StoreService
from lumbung.store.store import ModelStore
from lumbung.surfaces import openai as oai
from lumbung.surfaces.common import RequestLog, endpoint, read_body, sse_response, state_of
from lumbung.ui import data
from lumbung.ui import reports as ui_reports
from lumbung.ui import usage as ui_usage
from lumbung.ui.pages import PAGES, render
from lumbung.ui.static import assets

TICK = 1.0  # seconds between looks for a change, per open event stream
PING = 15.0  # seconds of no change before a comment line keeps proxies from closing the stream
# The pages may load only what this server serves: no inline script, nothing from elsewhere.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

public = endpoint(oai.error_body, auth=False)
operator = endpoint(oai.error_body, admin=True)


@public
async def home(request: Request, entry: RequestLog) -> Response:
    return RedirectResponse("/ui/overview", status_code=307)


@public
async def page(request: Request, entry: RequestLog) -> Response:
    name = request.path_params["page"]
    if name not in dict(PAGES):
        raise errors.NotFound(f"Unknown page: /ui/{name}")
    return HTMLResponse(render(name), headers=PAGE_HEADERS)


@public
async def asset(request: Request, entry: RequestLog) -> Response:
    found = assets().get(request.path_params["name"])
    if found is None:
        raise errors.NotFound(f"Unknown asset: {request.url.path}")
    # Cached for good only when asked for by the current hash; an old hash gets today's file, briefly.
    cache = (
        "public, max-age=31536000, immutable"
        if request.query_params.get("v") == found.version
        else "no-cache"
    )
    headers = {"Cache-Control": cache, "X-Content-Type-Options": "nosniff", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(found.gzipped, media_type=found.media_type, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)


@operator
async def session(request: Request, entry: RequestLog) -> Response:
    return JSONResponse({"operator": True, "keys": state_of(request).keys.enabled})


def _store(request: Request) -> ModelStore:
    service: StoreService | None = getattr(request.app.state, "store", None)
    return service.store if service is not None else ModelStore(state_of(request).settings.home)


@operator
async def overview(request: Request, entry: RequestLog) -> Response:
    return JSONResponse(data.overview(state_of(request).gateway))


async def _models(request: Request) -> dict[str, Any]:
    manifests = await asyncio.to_thread(_store(request).models)
    return data.models(state_of(request).gateway, manifests)


@operator
async def models(request: Request, entry: RequestLog) -> Response:
    return JSONResponse(await _models(request))


def _topics(request: Request) -> dict[str, Callable[[], Awaitable[dict[str, Any]]]]:
    gateway = state_of(request).gateway

    async def overview() -> dict[str, Any]:
        return data.overview(gateway)

    async def models() -> dict[str, Any]:
        return await _models(request)

    readers = {"overview": overview, "models": models}
    asked = request.query_params.get("topics", "overview").split(",")
    unknown = [t for t in asked if t not in readers]
    if unknown:
        raise errors.InvalidRequest(
            f"unknown topic {unknown[0]!r}; topics are {', '.join(readers)}", param="topics"
        )
    return {t: readers[t] for t in dict.fromkeys(asked)}


@operator
async def events(request: Request, entry: RequestLog) -> Response:
    """Each topic at once, then again whenever it changes (looked at every ``TICK``). The client's
    hang-up ends the stream (the request boundary cancels it)."""
    topics = _topics(request)

    async def stream() -> AsyncIterator[bytes]:
        last: dict[str, str] = {}
        quiet = 0.0
        while True:
            sent = False
            for topic, read in topics.items():
                body = await read()
                stamp = json.dumps({k: v for k, v in body.items() if k != "now"}, sort_keys=True)
                if last.get(topic) != stamp:
                    last[topic] = stamp
                    text = json.dumps(body, separators=(",", ":"))
                    yield f"event: {topic}\ndata: {text}\n\n".encode()
                    sent = True
            quiet = 0.0 if sent else quiet + TICK
            if quiet >= PING:
                quiet = 0.0
                yield b": ping\n\n"
            await asyncio.sleep(TICK)

    entry.stream = True
    return sse_response(stream())


class VerifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str


@operator
async def verify(request: Request, entry: RequestLog) -> Response:
    try:
        body = VerifyBody.model_validate_json(await read_body(request) or b"{}")
    except ValidationError as exc:
        raise errors.InvalidRequest(f"invalid request body: {exc.errors()[0]['msg']}", param="model") from exc
    store = _store(request)
    entry.model = body.model
    try:
        manifest = await asyncio.to_thread(store.find, body.model)
        problems = await asyncio.to_thread(store.verify, manifest)
        manifest = await asyncio.to_thread(store.find, body.model)
    except errors.ModelNotInStore as exc:
        raise errors.NotFound(str(exc), param="model") from exc
    except errors.StoreError as exc:
        raise errors.InvalidRequest(str(exc), param="model") from exc
    return JSONResponse(
        {"model": manifest.name, "ok": not problems, "problems": problems, **data.stored(manifest)}
    )


@operator
async def usage(request: Request, entry: RequestLog) -> Response:
    """``?by=key|route|model|provider&since=24h``: the ledger in ``usage.BUCKETS`` buckets since then."""
    state = state_of(request)
    if state.ledger is None:
        raise errors.NotFound("The usage ledger is off (usage_ledger: false).")
    by = request.query_params.get("by", "key")
    if by not in BY:
        raise errors.InvalidRequest(f"by: must be one of {', '.join(BY)}", param="by")
    since = parse_since(request.query_params.get("since") or "24h")
    assert since is not None
    state.outbox.drain()  # this server's latest requests included (record.Outbox), then written
    await state.ledger.flush()
    found = await ui_usage.series(state.ledger.db, by, since)
    return JSONResponse({"by": by, "currency": state.settings.prices.currency, **found.as_json()})


@operator
async def reports(request: Request, entry: RequestLog) -> Response:
    home = state_of(request).settings.home
    return JSONResponse(
        {"folder": str(ui_reports.folder(home)), "reports": await asyncio.to_thread(ui_reports.listing, home)}
    )


@operator
async def report(request: Request, entry: RequestLog) -> Response:
    home = state_of(request).settings.home
    name = request.path_params["name"]
    if name.endswith(".html"):
        # Someone else's page, possibly with scripts: saved, never shown under the dashboard's origin.
        path = ui_reports.path_of(home, name.removesuffix(".html"), ".html")
        headers = {
            "Content-Disposition": f'attachment; filename="{path.name}"',
            "X-Content-Type-Options": "nosniff",
        }
        return Response(await asyncio.to_thread(path.read_bytes), media_type="text/html", headers=headers)
    path = ui_reports.path_of(home, name, ".json")
    return Response(await asyncio.to_thread(path.read_bytes), media_type="application/json")


def routes() -> list[BaseRoute]:
    return [
        Route("/ui", home, methods=["GET"]),
        Route("/ui/", home, methods=["GET"]),
        Route("/ui/api/session", session, methods=["GET"]),
        Route("/ui/api/overview", overview, methods=["GET"]),
        Route("/ui/api/models", models, methods=["GET"]),
        Route("/ui/api/events", events, methods=["GET"]),
        Route("/ui/api/verify", verify, methods=["POST"]),
        Route("/ui/api/usage", usage, methods=["GET"]),
        Route("/ui/api/reports", reports, methods=["GET"]),
        Route("/ui/api/reports/{name}", report, methods=["GET"]),
        Route("/ui/assets/{name}", asset, methods=["GET"]),
        Route("/ui/{page}", page, methods=["GET"]),
    ]
