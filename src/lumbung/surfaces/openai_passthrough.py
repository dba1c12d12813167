"""OpenAI in, OpenAI out: the pass-through path for routes whose every target is an OpenAI-compatible
provider. The body goes upstream as the client sent it (only ``model`` rewritten) and the answer comes
back as bytes, so lumbung adds almost nothing to the upstream's latency (bench/gateway_overhead.py,
docs/performance.md). The gateway's failover, breaker, retry budget, egress policy and deadline apply
exactly as on the typed path; usage is still counted.

It runs as raw ASGI below Starlette (``PassThroughApp`` in front of the app): routing, the request and
response objects and the streaming response's task group cost more per request than everything this
path does itself. Requests it does not take (another path, a route with other providers, a body it
cannot parse) go on to Starlette untouched, their body replayed. It keeps the boundary every endpoint
has (``common.endpoint``): API keys, the body limit, OpenAI's error envelope, ``x-request-id``, one
log line, and a client that hangs up cancels the upstream call.

What lumbung would validate or refuse on the typed path is left to the upstream, which speaks the same
API: its 400s come back to the client as they are.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lumbung import record
from lumbung.accounts.keys import presented_key
from lumbung.engines.base import ForwardRequest
from lumbung.errors import ApiError, InternalError
from lumbung.surfaces import openai as oai
from lumbung.surfaces.common import (
    AppState,
    ClientGone,
    RequestLog,
    error_response,
    receive_body,
    sse_data,
    until_disconnected,
)
from lumbung.types import new_id

log = logging.getLogger(__name__)
errlog = logging.getLogger("lumbung.errors")

PATH = "/v1/chat/completions"
DONE = b"data: [DONE]\n\n"  # a stream's last event
WATCH_AFTER = 0.02  # seconds into a request before a client hang-up is watched for
_JSON = [(b"content-type", b"application/json")]
_SSE = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def eligible(state: AppState, data: Any) -> str | None:
    """The route name to forward ``data`` under, or None for the typed path."""
    if not isinstance(data, dict) or not isinstance(data.get("model"), str):
        return None
    if not isinstance(data.get("messages"), list) or not isinstance(data.get("stream", False), bool):
        return None
    return state.gateway.forwards(data["model"])


def _is_last(item: bytes) -> bool:
    return item.endswith(DONE)


class PassThroughApp:
    """ASGI: answers pass-through chat completions itself, hands everything else to ``app``."""

    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or not self.state.gateway.has_routes
        ):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        entry = RequestLog(
            id=headers.get(b"x-request-id", b"").decode("latin-1") or new_id("req"), method="POST", path=PATH
        )
        try:
            self.state.keys.check(_key(headers))
            body = await receive_body(
                receive, headers.get(b"content-length"), self.state.settings.max_body_bytes
            )
        except ApiError as exc:
            await _error(send, entry, exc)
            return
        public: str | None = None
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            data = None  # the typed path words the error
        else:
            public = eligible(self.state, data)
        if public is None:
            await self.app(scope, _replay(body, receive), send)
            return
        request = ForwardRequest(data, body, public, data.get("stream") is True)
        await _Exchange(self.state, request, entry, receive, send).run()


class _Exchange:
    """One pass-through request, from the first upstream attempt to the last byte sent."""

    def __init__(
        self, state: AppState, request: ForwardRequest, entry: RequestLog, receive: Receive, send: Send
    ) -> None:
        self.state, self.request, self.entry = state, request, entry
        self.receive, self.send = receive, send
        self.stream = request.stream
        self.record = record.RequestRecord()
        self.started = False  # response headers sent
        self.ending = False  # the last bytes are going out: a "disconnect" from now on is the server's
        self.gone = False
        self.watcher: asyncio.Future[None] | None = None

    async def run(self) -> None:
        entry = self.entry
        entry.model = self.request.public
        task = asyncio.current_task()
        assert task is not None
        token = record.current.set(self.record)
        # Watching for a hang-up takes a task; an answer done within WATCH_AFTER never needs one.
        watch = asyncio.get_running_loop().call_later(WATCH_AFTER, self._start_watch, task)
        try:
            await self._answer()
        except asyncio.CancelledError:
            if not self.gone:
                raise
            task.uncancel()
            entry.error = "client_disconnected"
            entry.finish(ClientGone.status if not self.started else None)
        except Exception as exc:
            error = (
                exc if isinstance(exc, ApiError) else InternalError(f"Internal error ({type(exc).__name__}).")
            )
            if not isinstance(exc, ApiError):
                errlog.exception("request %s failed", entry.id)
            if self.started:  # cannot happen by design: the relay answers its own errors in-band
                entry.error = error.code or error.type
            else:  # before the first byte: a plain HTTP error
                self.ending = True
                await _error(self.send, entry, error)
        finally:
            watch.cancel()
            if self.watcher is not None:
                self.watcher.cancel()
            record.current.reset(token)
            self._account()
            entry.finish()

    def _start_watch(self, task: asyncio.Task[Any]) -> None:
        self.watcher = asyncio.ensure_future(self._watch(task))

    async def _watch(self, task: asyncio.Task[Any]) -> None:
        """Cancels the request when the client hangs up (the upstream call closes with it)."""
        await until_disconnected(self.receive)
        if not self.ending:  # once the answer is complete, uvicorn reports a disconnect too
            self.gone = True
            task.cancel()

    async def _answer(self) -> None:
        stream = self.stream
        items = self.state.gateway.forward(self.request)
        try:
            try:
                item = await anext(items)
            except StopAsyncIteration as exc:
                raise InternalError("the provider produced no output") from exc
            send, rid = self.send, self.entry.id.encode("latin-1")
            if not stream:
                headers = [*_JSON, (b"content-length", str(len(item)).encode()), (b"x-request-id", rid)]
                self.started = self.ending = True
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": item})
                return
            self.entry.stream = True
            self.started = True
            await send(
                {"type": "http.response.start", "status": 200, "headers": [*_SSE, (b"x-request-id", rid)]}
            )
            await self._relay(items, item)
        finally:
            await items.aclose()

    async def _relay(self, items: AsyncGenerator[bytes, None], item: bytes) -> None:
        """After the first byte, errors travel inside the stream as OpenAI error events, never [DONE]."""
        send = self.send
        try:
            while not _is_last(item):
                await send({"type": "http.response.body", "body": item, "more_body": True})
                item = await anext(items)
        except ApiError as exc:
            self.entry.error = exc.code or exc.type
            item = sse_data(oai.error_body(exc))
        except StopAsyncIteration:
            self.entry.error = "truncated"
            item = sse_data(oai.error_body(InternalError("the provider's stream ended early")))
        except Exception as exc:
            log.exception("stream %s failed", self.entry.id)
            self.entry.error = "internal_error"
            item = sse_data(oai.error_body(InternalError(f"Internal error ({type(exc).__name__}).")))
        self.ending = True
        await send({"type": "http.response.body", "body": item, "more_body": False})

    def _account(self) -> None:
        usage = self.record.usage
        if usage is not None:
            self.entry.prompt_tokens = usage.prompt_tokens
            self.entry.completion_tokens = usage.completion_tokens


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The headers this path reads (ASGI gives names lower-cased); the first of each wins."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in (b"authorization", b"x-api-key", b"content-length", b"x-request-id") and name not in found:
            found[name] = value
    return found


def _key(headers: dict[bytes, bytes]) -> str | None:
    auth, xkey = headers.get(b"authorization"), headers.get(b"x-api-key")
    return presented_key(auth.decode("latin-1") if auth else None, xkey.decode("latin-1") if xkey else None)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` as if the body had not been read yet."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _error(send: Send, entry: RequestLog, exc: ApiError) -> None:
    """The error in OpenAI's envelope, as every endpoint answers it (``common.error_response``)."""
    entry.error = exc.code or exc.type
    response = error_response(exc, oai.error_body)
    headers = [*response.raw_headers, (b"x-request-id", entry.id.encode("latin-1"))]
    try:
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})
    finally:
        entry.finish(exc.status)
