"""HTTP plumbing shared by every surface: each route's part of the request boundary (``endpoint``;
the boundary itself is surfaces/boundary.py), body reading, who the caller is, server-sent events, and
hang-ups."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive

from lumbung import record
from lumbung.accounts.keys import Caller, KeyRing, presented_key
from lumbung.accounts.ledger import Ledger
from lumbung.accounts.limits import RateLimits
from lumbung.accounts.virtual import VirtualKeys
from lumbung.errors import ApiError, InternalError, InvalidRequest
from lumbung.gateway.router import Gateway
from lumbung.observe.metrics import Metrics
from lumbung.record import Outbox, RequestRecord
from lumbung.settings import Settings
from lumbung.surfaces.boundary import Admit, ErrorRenderer, Policy, Sink, access_log, error_response
from lumbung.types import new_id

errlog = logging.getLogger("lumbung.errors")


@dataclass
class AppState:
    settings: Settings
    gateway: Gateway
    keys: KeyRing
    ready: bool = False
    load_error: str | None = None
    seen_extra_fields: set[str] = field(default_factory=set)
    # Resources opened on first use (a database) register how to close them at shutdown.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Where every request's record goes once closed: the access log; metrics and the ledger add themselves.
    sinks: list[Sink] = field(default_factory=lambda: [access_log])
    outbox: Outbox = field(default_factory=Outbox)  # closes ended requests' records (runs the sinks)
    admit: list[Admit] = field(default_factory=list)  # checks of an accepted key (budgets)
    ledger: Ledger | None = None  # the usage ledger (accounts/ledger.py); None when turned off
    metrics: Metrics | None = None  # GET /metrics; every request counted once it ends
    limits: RateLimits | None = None  # rate limits per key, checked by the request boundary
    virtual_keys: VirtualKeys | None = None  # the key store's keys (accounts/virtual.py), read on use

    def note_extra_fields(self, surface: str, names: list[str]) -> None:
        """Unknown request fields are accepted; each is logged once per process, not per request."""
        for name in names:
            key = f"{surface}:{name}"
            if key not in self.seen_extra_fields and len(self.seen_extra_fields) < 1000:
                self.seen_extra_fields.add(key)
                errlog.warning("ignoring unknown %s request field %r (logged once)", surface, name)


# The record every request leaves behind, as the handlers see it (the boundary opens and closes it).
RequestLog = RequestRecord


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.lumbung
    return state


async def read_body(request: Request) -> bytes:
    """The request body, read from the ASGI channel itself (``receive_body``), so ``request.body()``
    must not be called after it. The boundary refuses one over the limit (413) as it arrives."""
    return await receive_body(request.receive)


async def receive_body(receive: Receive) -> bytes:
    """The body from an ASGI ``receive``; 400 for a client gone before the end."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise InvalidRequest("The client closed the connection before sending the whole body.")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def caller_of(request: Request) -> Caller:
    """Who sent the request (what it may see of stored state), as the boundary found its key."""
    rec = record.current.get()
    if rec is not None and rec.caller is not None:
        return rec.caller
    return state_of(request).keys.check(
        presented_key(request.headers.get("authorization"), request.headers.get("x-api-key"))
    )


Handler = Callable[[Request, RequestLog], Awaitable[Response]]


def endpoint(
    render: ErrorRenderer, *, auth: bool = True, admin: bool = False
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """One route's part of the request boundary (surfaces/boundary.py): the policy the boundary
    applies before the route runs (``render``: the API's error envelope; ``auth``: a key is needed;
    ``admin``: an operator key), and inside Starlette, every failure as that envelope."""
    policy = Policy(render, auth=auth, admin=admin)

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            entry = record.current.get()
            if entry is None:  # only a test calling the route without the app around it
                entry = RequestRecord(id=new_id("req"), method=request.method, path=request.url.path)
            try:
                return await handler(request, entry)
            except ApiError as exc:
                entry.error = exc.code or exc.type
                return error_response(exc, render)
            except Exception as exc:
                errlog.exception("request %s failed", entry.id)
                entry.error = "internal_error"
                return error_response(InternalError(f"Internal error ({type(exc).__name__})."), render)

        run.policy = policy  # type: ignore[attr-defined]  # read by boundary.Policies
        return run

    return wrap


def sse_response(events: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def sse_data(body: dict[str, Any] | str) -> bytes:
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return f"data: {text}\n\n".encode()


def sse_event(event: str, body: dict[str, Any]) -> bytes:
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event}\ndata: {text}\n\n".encode()


async def unless_disconnected(request: Request, work: Awaitable[Any]) -> Any:
    """Await ``work``; a client that hangs up meanwhile cancels it. The request boundary watches for
    that on every request (surfaces/boundary.py: it cancels the request's task); kept as the name for
    the places that wait on a backend before the answer starts."""
    return await work
