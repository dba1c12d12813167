"""The ASGI application: every surface's routes over one gateway, plus /health."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from lumbung.accounts.auth import Authenticator
from lumbung.accounts.budgets import Budgets
from lumbung.accounts.costs import Costing
from lumbung.accounts.keys import KeyRing
from lumbung.accounts.ledger import Ledger
from lumbung.accounts.limits import Limiter, Limits, LocalLimiter, RateLimits
from lumbung.accounts.store import KeyStore
from lumbung.accounts.virtual import VirtualKeys
from lumbung.clock import Clock
from lumbung.errors import ApiError, NotFound
from lumbung.gateway.router import Gateway
from lumbung.observe.metrics import Endpoints, Metrics
from lumbung.observe.proof import ProofState
from lumbung.observe.traces import Traces
from lumbung.proof.tap import build_tap
from lumbung.record import Outbox
from lumbung.settings import Settings
from lumbung.state.db import Database
from lumbung.surfaces import (
    admin_routes,
    anthropic_routes,
    keys_routes,
    ollama_routes,
    ollama_store_routes,
    openai_completions_routes,
    openai_embeddings_routes,
    openai_responses_routes,
    openai_routes,
    openapi,
    usage_routes,
)
from lumbung.surfaces.boundary import Boundary, Policies, Policy
from lumbung.surfaces.common import AppState, state_of
from lumbung.surfaces.corked import CorkedHttpToolsProtocol
from lumbung.surfaces.openai import error_body
from lumbung.surfaces.openai_passthrough import PassThroughApp
from lumbung.ui import routes as ui_routes

log = logging.getLogger(__name__)

Preload = Callable[[], Any]

# How uvicorn runs this app, for `lumbung serve` and the drill's in-process server alike: a response's
# writes leave together (surfaces/corked.py); no access log (RequestLog writes its own line); no
# proxy-header parsing (nothing reads the client's address, and the check cost every request).
SERVER_OPTIONS: dict[str, Any] = {
    "http": CorkedHttpToolsProtocol,
    "access_log": False,
    "proxy_headers": False,
}


async def health(request: Request) -> Response:
    state = state_of(request)
    if state.ready:
        return JSONResponse({"status": "ok"})
    body: dict[str, Any] = {"status": "loading"}
    if state.load_error:
        body = {"status": "error", "error": state.load_error}
    return JSONResponse(body, status_code=503)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        err: ApiError = NotFound(f"Unknown path: {request.method} {request.url.path}")
    else:
        err = ApiError(exc.detail or "HTTP error", status=exc.status_code)
        err.type = "invalid_request_error"
    return JSONResponse(error_body(err), status_code=err.status, headers=exc.headers)


class App(Starlette):
    """Starlette with the pass-through hot path in front of it (surfaces/openai_passthrough.py), and
    the request boundary every request crosses around both (surfaces/boundary.py)."""

    def __init__(self, state: AppState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        settings = state.settings
        policies = Policies(self.routes, Policy(error_body, auth=False))
        front = PassThroughApp(super().__call__, state)
        self._front = Boundary(
            front,
            Authenticator(state.keys, state.virtual_keys),
            settings.max_body_bytes,
            policies,
            state.sinks,
            state.admit,
            limits=state.limits,
            outbox=state.outbox,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._front(scope, receive, send)


def create_app(
    settings: Settings,
    gateway: Gateway,
    *,
    preload: Preload | None = None,
    on_shutdown: Callable[[], None] | None = None,
    sink_delay: float = 0.0,
) -> Starlette:
    """``preload`` loads the default model in the background; /health answers 503 until it is done.
    ``sink_delay``: seconds after a request ends before its record's sinks run (record.Outbox; 0: on
    the loop's next turn)."""
    state = AppState(
        settings=settings,
        gateway=gateway,
        keys=KeyRing(settings.api_keys, settings.admin_api_keys),
        outbox=Outbox(sink_delay),
    )
    state.limits = rate_limits(settings, gateway.clock)
    state.closers.append(state.limits.limiter.aclose)

    async def open_keys() -> KeyStore:
        db = await Database.at(settings.database_url, settings.home).open()
        state.closers.append(db.close)
        return KeyStore(db)

    state.virtual_keys = VirtualKeys(open_keys)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task: asyncio.Task[Any] | None = None
        gateway.start()
        if state.ledger is not None:
            await state.ledger.start()
        if preload is None:
            state.ready = True
        else:

            async def load() -> None:
                try:
                    await preload()
                    state.ready = True
                    log.info("ready")
                except Exception as exc:
                    log.exception("loading the default model failed")
                    state.load_error = str(exc)

            task = asyncio.create_task(load())
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            state.outbox.drain()  # the last requests' records, before what their sinks write to closes
            for close in reversed(state.closers):
                await close()
            await gateway.aclose()
            if state.ledger is not None:  # after the requests' records closed: they are its last rows
                await state.ledger.aclose()
            if on_shutdown is not None:
                await asyncio.to_thread(on_shutdown)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", openapi.openapi, methods=["GET"]),
        *openai_routes.routes(),
        *anthropic_routes.routes(),
        *admin_routes.routes(),
        *usage_routes.routes(),
        *keys_routes.routes(),
        *openai_completions_routes.routes(),
        *openai_embeddings_routes.routes(),
        *ollama_routes.routes(),
        *ollama_store_routes.routes(),
        *openai_responses_routes.routes(),
        *ui_routes.routes(),
    ]
    state.metrics = Metrics(gateway, Endpoints(_templates(routes)))
    tap = gateway.tap = build_tap(settings, gateway)
    state.metrics.registry.register(ProofState(tap))
    state.closers.append(tap.aclose)
    state.sinks.append(state.metrics.record)
    if settings.usage_ledger:
        state.ledger = ledger_of(settings, gateway)
        state.sinks.append(state.ledger.sink)
        if state.ledger.budgets is not None:
            state.admit.append(state.ledger.budgets.check)
    if settings.otlp_endpoint:
        traces = Traces(settings.otlp_endpoint, state.metrics.endpoints)
        state.sinks.append(traces.record)

        async def close_traces() -> None:
            await asyncio.to_thread(traces.close)

        state.closers.append(close_traces)
    app = App(
        state,
        routes=routes,
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.lumbung = state
    return app


def ledger_of(settings: Settings, gateway: Gateway) -> Ledger:
    """The usage ledger and the budgets it settles, in the state database."""
    db = Database.at(settings.database_url, settings.home)
    return Ledger(
        db,
        Costing(settings.prices, settings.parallel),
        gateway.route_name,
        budgets=Budgets(settings.prices.currency),
        flush_seconds=settings.ledger_flush_ms / 1000,
        batch_rows=settings.ledger_batch_rows,
    )


def rate_limits(settings: Settings, clock: Clock) -> RateLimits:
    """The limiter: in this process, or in Redis shared by every instance (``redis_url``)."""
    defaults = None
    if settings.key_limits is not None:
        cfg = settings.key_limits
        defaults = Limits(cfg.rpm, cfg.tpm, cfg.max_concurrent)
    limiter: Limiter = LocalLimiter(clock)
    if settings.redis_url:
        from lumbung.accounts.limits_redis import RedisLimiter

        limiter = RedisLimiter(settings.redis_url, lease=settings.request_timeout + 60)
    return RateLimits(limiter, defaults)


def _templates(routes: list[BaseRoute]) -> list[tuple[str, re.Pattern[str] | None]]:
    """Each route's path template, with the pattern that matches it when it has parameters."""
    return [(r.path, r.path_regex if r.param_convertors else None) for r in routes if isinstance(r, Route)]
