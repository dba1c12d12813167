"""HTTP plumbing shared by every surface: bounded body reading, authentication, the error boundary,
one structured log line per request, and server-sent events."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive

from lumbung.accounts.keys import Caller, KeyRing, presented_key
from lumbung.errors import ApiError, InternalError, InvalidRequest, PayloadTooLarge
from lumbung.gateway.router import Gateway
from lumbung.settings import Settings
from lumbung.types import new_id

log = logging.getLogger("lumbung.access")
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

    def note_extra_fields(self, surface: str, names: list[str]) -> None:
        """Unknown request fields are accepted; each is logged once per process, not per request."""
        for name in names:
            key = f"{surface}:{name}"
            if key not in self.seen_extra_fields and len(self.seen_extra_fields) < 1000:
                self.seen_extra_fields.add(key)
                errlog.warning("ignoring unknown %s request field %r (logged once)", surface, name)


@dataclass
class RequestLog:
    """The one structured line a request leaves behind; never prompts or keys."""

    id: str
    method: str
    path: str
    start: float = field(default_factory=time.perf_counter)
    model: str | None = None
    status: int = 200
    stream: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    done: bool = False

    def finish(self, status: int | None = None) -> None:
        if self.done:
            return
        self.done = True
        if status is not None:
            self.status = status
        if not log.isEnabledFor(logging.INFO):
            return
        latency_ms = round((time.perf_counter() - self.start) * 1000, 1)
        try:
            # Written on the loop's next turn, once the answer's last bytes have gone out: a log line
            # costs ~0.1 ms here and should not be on the client's clock (docs/performance.md).
            asyncio.get_running_loop().call_soon(self._write, latency_ms)
        except RuntimeError:
            self._write(latency_ms)

    def _write(self, latency_ms: float) -> None:
        record: dict[str, Any] = {
            "event": "request",
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "latency_ms": latency_ms,
        }
        for key in ("model", "stream", "prompt_tokens", "completion_tokens", "error"):
            value = getattr(self, key)
            if value not in (None, False):
                record[key] = value
        log.info(json.dumps(record, separators=(",", ":")))


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.lumbung
    return state


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes (413) before reading them all. Read from
    the ASGI channel itself (``receive_body``), so ``request.body()`` must not be called after it."""
    return await receive_body(request.receive, request.headers.get("content-length"), limit)


async def receive_body(receive: Receive, declared: str | bytes | None, limit: int) -> bytes:
    """The body from an ASGI ``receive``, ``declared`` being its Content-Length header if any; 413
    as soon as it is over ``limit``, 400 for a bad header or a client gone before the end."""
    if declared is not None:
        try:
            too_big = int(declared) > limit
        except ValueError as exc:
            raise InvalidRequest("Invalid Content-Length header.") from exc
        if too_big:
            raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise InvalidRequest("The client closed the connection before sending the whole body.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def authenticate(request: Request, *, admin: bool = False) -> Caller:
    """Check the request's key; who sent it is kept on the request for ``caller_of``."""
    caller = state_of(request).keys.check(
        presented_key(request.headers.get("authorization"), request.headers.get("x-api-key")), admin=admin
    )
    request.state.caller = caller
    return caller


def caller_of(request: Request) -> Caller:
    """Who sent an authenticated request (what it may see of stored state)."""
    caller = getattr(request.state, "caller", None)
    return caller if isinstance(caller, Caller) else authenticate(request)


ErrorRenderer = Callable[[ApiError], dict[str, Any]]
Handler = Callable[[Request, RequestLog], Awaitable[Response]]


def error_response(exc: ApiError, render: ErrorRenderer) -> JSONResponse:
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return JSONResponse(render(exc), status_code=exc.status, headers=headers)


def endpoint(
    render: ErrorRenderer, *, auth: bool = True, admin: bool = False
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """The error boundary of one route: authenticates (``admin``: operator keys only), maps every
    failure to the surface's envelope, and writes the request's log line (streams write theirs when
    they end)."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            entry = RequestLog(
                id=request.headers.get("x-request-id") or new_id("req"),
                method=request.method,
                path=request.scope["path"],
            )
            try:
                if auth:
                    authenticate(request, admin=admin)
                response = await handler(request, entry)
            except ApiError as exc:
                entry.error = exc.code or exc.type
                response = error_response(exc, render)
            except Exception as exc:
                errlog.exception("request %s failed", entry.id)
                entry.error = "internal_error"
                response = error_response(InternalError(f"Internal error ({type(exc).__name__})."), render)
            response.headers["x-request-id"] = entry.id
            if not entry.stream or response.status_code != 200:
                entry.finish(response.status_code)
            return response

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


class ClientGone(ApiError):
    status = 499
    type = "client_closed_request"
    code = "client_closed_request"


async def until_disconnected(receive: Receive) -> None:
    """Returns when ``receive`` reports the client gone (after a complete answer uvicorn reports
    that too)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[Any]) -> Any:
    """Await ``work`` in this task, cancelling it if the client hangs up first (a non-streaming
    request). One watcher task rather than a second task for ``work`` and ``asyncio.wait``: this is
    on every whole answer's path, and each task costs (docs/performance.md, gateway overhead)."""
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        await until_disconnected(request.receive)
        gone = True
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if gone:
            task.uncancel()
            raise ClientGone("The client closed the connection.") from None
        raise
    finally:
        watcher.cancel()
