"""OpenAI in, OpenAI out: the pass-through path for routes whose every target is an OpenAI-compatible
provider. The body goes upstream as the client sent it (only ``model`` rewritten) and the answer comes
back as bytes, so lumbung adds almost nothing to the upstream's latency (bench/gateway_overhead.py,
docs/performance.md). The gateway's failover, breaker, retry budget, egress policy and deadline apply
exactly as on the typed path; usage is still counted.

It runs as raw ASGI below Starlette (``PassThroughApp`` in front of the app): routing, the request and
response objects and the streaming response's task group cost more per request than everything this
path does itself. Requests it does not take (another path, a route with other providers, a body it
cannot parse) go on to Starlette untouched, their body replayed. The request boundary
(surfaces/boundary.py) is around it as around every endpoint: API keys, the body limit, OpenAI's error
envelope, ``x-request-id``, the request's record and log line. A client that hangs up cancels the
upstream call.

What lumbung would validate or refuse on the typed path is left to the upstream, which speaks the same
API: its 400s come back to the client as they are.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lumbung import record
from lumbung.engines.base import ForwardRequest
from lumbung.errors import ApiError, InternalError
from lumbung.surfaces import openai as oai
from lumbung.surfaces.common import (
    AppState,
    RequestLog,
    receive_body,
    sse_data,
)

log = logging.getLogger(__name__)
errlog = logging.getLogger("lumbung.errors")

PATH = "/v1/chat/completions"
DONE = b"data: [DONE]\n\n"  # a stream's last event
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
        # Keys, the body limit, the error envelope, the request id and the log line are the
        # boundary's (surfaces/boundary.py), around this app as around Starlette's endpoints.
        body = await receive_body(receive)
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
        entry = record.current.get()
        assert entry is not None, "the request boundary is around this app"
        request = ForwardRequest(data, body, public, data.get("stream") is True)
        await _Exchange(self.state, request, entry, send).run()


class _Exchange:
    """One pass-through request, from the first upstream attempt to the last byte sent. A client that
    hangs up is the boundary's: it cancels this task, and closing ``items`` closes the upstream call."""

    def __init__(self, state: AppState, request: ForwardRequest, entry: RequestLog, send: Send) -> None:
        self.state, self.request, self.entry, self.send = state, request, entry, send
        self.stream = request.stream

    async def run(self) -> None:
        self.entry.model = self.request.public
        # An error before the first byte is the boundary's to answer (a plain HTTP error in OpenAI's
        # envelope); after it, the relay answers it in-band.
        try:
            await self._answer()
        finally:
            self._account()

    async def _answer(self) -> None:
        stream = self.stream
        items = self.state.gateway.forward(self.request)
        try:
            try:
                item = await anext(items)
            except StopAsyncIteration as exc:
                raise InternalError("the provider produced no output") from exc
            send = self.send
            if not stream:
                headers = [*_JSON, (b"content-length", str(len(item)).encode())]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": item})
                return
            self.entry.stream = True
            await send({"type": "http.response.start", "status": 200, "headers": _SSE})
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
        await send({"type": "http.response.body", "body": item, "more_body": False})

    def _account(self) -> None:
        """The tokens of the answer: the gateway noted the attempt's usage on the record."""
        usage = self.entry.usage
        if usage is not None:
            self.entry.prompt_tokens = usage.prompt_tokens
            self.entry.completion_tokens = usage.completion_tokens


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
