"""OpenAI in, OpenAI out: the pass-through path for routes whose every target is an OpenAI-compatible
provider. The body goes upstream as the client sent it (only ``model`` rewritten) and the answer comes
back as bytes, so lumbung adds almost nothing to the upstream's latency (bench/gateway_overhead.py,
docs/performance.md). The gateway's failover, breaker, retry budget, egress policy and deadline apply
exactly as on the typed path; usage is still counted.

What lumbung would validate or refuse on the typed path is left to the upstream, which speaks the same
API: its 400s come back to the client as they are.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from lumbung.engines.http_openai import DONE, OpenAIHTTPBackend, PassThrough
from lumbung.errors import ApiError, InternalError
from lumbung.gateway.state import Route, TargetState
from lumbung.surfaces import openai as oai
from lumbung.surfaces.common import AppState, RequestLog, sse_data, sse_response, unless_disconnected

log = logging.getLogger(__name__)


def eligible(state: AppState, data: Any) -> Route | None:
    """The route to forward ``data`` through, or None for the typed path."""
    if not isinstance(data, dict) or not isinstance(data.get("model"), str):
        return None
    if not isinstance(data.get("messages"), list) or not isinstance(data.get("stream", False), bool):
        return None
    try:
        route = state.gateway.resolve(data["model"])
    except ApiError:
        return None
    if (
        not route.guarded
        or not route.passthrough
        or not all(isinstance(m.state.provider.backend, OpenAIHTTPBackend) for m in route.members())
    ):
        return None
    return route


def _prompt(data: dict[str, Any]) -> str:
    return "\x00".join(f"{m.get('role')}:{m.get('content')}" for m in data["messages"] if isinstance(m, dict))


def _is_last(item: bytes) -> bool:
    return item.endswith(DONE)


def _whole_is_last(item: bytes) -> bool:
    return True


async def forward(request: Request, state: AppState, body: bytes, entry: RequestLog) -> Response | None:
    """Answer ``body`` by pass-through, or return None when the typed path must handle it."""
    if not state.gateway.has_routes:
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None  # the typed path words the error
    route = eligible(state, data)
    if route is None:
        return None
    stream = data.get("stream") is True
    entry.model = route.name
    relay: list[PassThrough] = []

    def start(target: TargetState) -> AsyncGenerator[bytes, None]:
        backend = target.provider.backend
        assert isinstance(backend, OpenAIHTTPBackend)
        return backend.forward(data, target.model, route.name, stream, relay)

    prompt = _prompt(data) if route.prefix_affinity else None
    items = state.gateway.forward(
        route, prompt, start, _is_last if stream else _whole_is_last, whole=not stream
    )
    try:
        first = await unless_disconnected(request, anext(items))
    except StopAsyncIteration as exc:
        raise InternalError("the provider produced no output") from exc
    except BaseException:
        await items.aclose()
        raise
    if not stream:
        await items.aclose()
        _account(entry, relay)
        return Response(first, media_type="application/json")
    entry.stream = True
    return sse_response(_relay(items, first, entry, relay))


def _account(entry: RequestLog, relay: list[PassThrough]) -> None:
    if relay:
        entry.prompt_tokens = relay[-1].usage.prompt_tokens
        entry.completion_tokens = relay[-1].usage.completion_tokens


async def _relay(
    items: AsyncGenerator[bytes, None], first: bytes, entry: RequestLog, relay: list[PassThrough]
) -> AsyncIterator[bytes]:
    """After the first byte, errors travel inside the stream as OpenAI error events, never [DONE]."""
    item = first
    try:
        while True:
            yield item
            if _is_last(item):
                break
            item = await anext(items)
    except ApiError as exc:
        entry.error = exc.code or exc.type
        yield sse_data(oai.error_body(exc))
    except StopAsyncIteration:
        entry.error = "truncated"
        yield sse_data(oai.error_body(InternalError("the provider's stream ended early")))
    except BaseException as exc:
        if isinstance(exc, Exception):
            log.exception("stream %s failed", entry.id)
            entry.error = "internal_error"
            yield sse_data(oai.error_body(InternalError(f"Internal error ({type(exc).__name__}).")))
        else:  # cancelled: the client went away
            entry.error = "client_disconnected"
            raise
    finally:
        await items.aclose()
        _account(entry, relay)
        entry.finish()
