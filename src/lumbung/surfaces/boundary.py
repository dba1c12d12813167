"""The one boundary every HTTP request crosses, as raw ASGI around everything else (the pass-through
path and Starlette's endpoints alike):

    record (RequestRecord: request id, api) -> key and scope (401/403) -> admission checks of the
      key (a spent budget: 429 insufficient_quota) -> body limit (413) -> the key's rate limits (429;
      accounts/limits.py)
      -> the app (a client hang-up cancels it, and everything it started, at once) -> an error before the first byte in the API's own envelope -> x-request-id on every
      answer -> the record stopped once the app is done (the last byte went out or the client left,
      and every attempt is closed: its latency taken) and closed a moment later (record.Outbox): its
      sinks run (the access log line, metrics, the usage ledger)

A key with rate limits holds its concurrency slot from the check until the request is over, however it
ends (answered, failed, client gone, stream cut), and its tokens are settled then with the usage the
attempts reported; a key with a tokens-per-minute limit has its body read before the app runs, to
estimate what to reserve. Its ``x-ratelimit-*`` headers go on every answer, refusals included.

Which API a path belongs to, and whether it needs a key (or an operator key), each endpoint declares
with ``common.endpoint``; ``Policies`` reads that from the routes once. Paths without a declared
policy (``/health``, ``/openapi.json``, unknown paths) need no key and answer in OpenAI's envelope.
A surface keeps no copy of any of this: it raises ``ApiError`` (or returns its error response) and
notes what it learns (model, streaming, an in-band error) on ``record.current``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lumbung import record
from lumbung.accounts.auth import Authenticator
from lumbung.accounts.keys import Caller, presented_key
from lumbung.accounts.limits import Grant, Limits, RateLimitExceeded, RateLimits, estimate
from lumbung.errors import ApiError, InternalError, InvalidRequest, PayloadTooLarge
from lumbung.record import Outbox, RequestRecord
from lumbung.types import new_id

log = logging.getLogger("lumbung.access")
errlog = logging.getLogger("lumbung.errors")

ErrorRenderer = Callable[[ApiError], dict[str, Any]]
WATCH_AFTER = 0.02  # seconds into a request before a client hang-up is watched for
Sink = Callable[[RequestRecord], None]
Admit = Callable[[Caller], None]  # raises the ApiError that refuses an accepted key's request


@dataclass(frozen=True, slots=True)
class Policy:
    """What the boundary does for one endpoint: its API's error envelope, and which key it needs."""

    render: ErrorRenderer
    auth: bool = True
    admin: bool = False

    @property
    def api(self) -> str:
        module = self.render.__module__
        return next((api for api in ("anthropic", "ollama") if api in module), "openai")


class Policies:
    """The policy of each path, as its endpoint declared it (exact paths first, then patterns)."""

    def __init__(self, routes: Sequence[BaseRoute], default: Policy) -> None:
        self.default = default
        self.exact: dict[str, Policy] = {}
        self.patterns: list[tuple[re.Pattern[str], Policy]] = []
        for route in routes:
            policy = getattr(route, "endpoint", None) and getattr(route.endpoint, "policy", None)  # type: ignore[attr-defined]
            if not isinstance(route, Route) or not isinstance(policy, Policy):
                continue
            if route.param_convertors:
                self.patterns.append((route.path_regex, policy))
            else:
                self.exact.setdefault(route.path, policy)

    def find(self, path: str) -> Policy:
        found = self.exact.get(path)
        if found is not None:
            return found
        for pattern, policy in self.patterns:
            if pattern.match(path):
                return policy
        return self.default


def error_response(exc: ApiError, render: ErrorRenderer) -> JSONResponse:
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return JSONResponse(render(exc), status_code=exc.status, headers=headers)


def access_log(rec: RequestRecord) -> None:
    """The one structured line a request leaves behind; never prompts or keys."""
    if not log.isEnabledFor(logging.INFO):
        return
    line: dict[str, Any] = {
        "event": "request",
        "id": rec.id,
        "method": rec.method,
        "path": rec.path,
        "status": rec.status,
        "latency_ms": rec.latency_ms,
    }
    for key in ("model", "stream", "prompt_tokens", "completion_tokens", "error", "target"):
        value = getattr(rec, key)
        if value not in (None, False):
            line[key] = value
    if len(rec.attempts) > 1:
        line["attempts"] = len(rec.attempts)
    log.info(json.dumps(line, separators=(",", ":")))


class _Reply:
    """``send`` for one request: stamps ``x-request-id`` on the answer and keeps its status on the
    record."""

    __slots__ = ("ending", "extra", "rec", "send", "started")

    def __init__(self, send: Send, rec: RequestRecord) -> None:
        self.send = send
        self.rec = rec
        self.started = False
        self.ending = False  # the last bytes are going out: a "disconnect" from now on is the server's
        self.extra: list[tuple[bytes, bytes]] = []  # more headers for the answer (x-ratelimit-*)

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            self.rec.status = message["status"]
            headers = [
                *message.get("headers", ()),
                *self.extra,
                (b"x-request-id", self.rec.id.encode("latin-1")),
            ]
            if self.rec.serving is not None:  # which provider answers (the playground shows it)
                headers.append((b"x-lumbung-target", self.rec.serving.encode("latin-1", "replace")))
            message = {**message, "headers": headers}
        elif kind == "http.response.body" and not message.get("more_body", False):
            self.ending = True
        await self.send(message)

    async def error(self, exc: ApiError, render: ErrorRenderer) -> None:
        """``exc`` as the answer, in the API's envelope; after the first byte only noted (a started
        stream carries its errors in-band, the surface's business)."""
        self.rec.error = self.rec.error or exc.code or exc.type
        if self.started:
            return
        response = error_response(exc, render)
        await self(
            {"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers}
        )
        await self({"type": "http.response.body", "body": response.body})


class _HangUp:
    """Cancels the request's task when its client hangs up, so everything it started (the gateway's
    attempts, the backend's work) ends at once, on every path. Watching takes a task and a read of
    ``receive``, so it starts only once the body has been read, and only WATCH_AFTER into the request:
    most answers are done by then and never need one."""

    def __init__(self, receive: Receive, reply: _Reply) -> None:
        self.receive = receive
        self.reply = reply
        self.task = asyncio.current_task()
        self.gone = False
        self._timer: asyncio.TimerHandle | None = None
        self._watcher: asyncio.Future[None] | None = None

    def arm(self) -> None:
        """The body is read: watch from WATCH_AFTER on."""
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(WATCH_AFTER, self._start)

    def _start(self) -> None:
        self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        if not self.reply.ending and self.task is not None:  # after the answer, uvicorn says so too
            self.gone = True
            self.reply.rec.error = "client_disconnected"
            self.task.cancel()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()


def _bounded(receive: Receive, limit: int, read: Callable[[], None]) -> Receive:
    """``receive`` refusing a body past ``limit`` bytes as it arrives (413), chunked or not; ``read``
    is called once the whole body has arrived."""
    size = 0

    async def bounded() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
            if not message.get("more_body", False):
                read()
        return message

    return bounded


_READ = (b"authorization", b"x-api-key", b"content-length", b"x-request-id", b"traceparent")


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body, read now, and a ``receive`` that gives the app the same messages again."""
    pending: deque[Message] = deque()
    body: list[bytes] = []
    while True:
        message = await receive()
        pending.append(message)
        if message["type"] != "http.request":
            break
        body.append(message.get("body", b""))
        if not message.get("more_body", False):
            break

    async def replay() -> Message:
        return pending.popleft() if pending else await receive()

    return b"".join(body), replay


def _used(rec: RequestRecord, grant: Grant) -> int:
    """Tokens a request used, for its key's tokens limit: what its answers reported; none when nothing
    answered; the estimate when an answer began but never reported (a stream cut halfway), so
    hanging up on a long answer does not make it free."""
    usage = rec.usage
    if usage is not None:
        return usage.prompt_tokens + usage.completion_tokens
    return grant.tokens if rec.first_token_seconds is not None else 0


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The headers the boundary reads (ASGI gives names lower-cased); the first of each wins."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in _READ and name not in found:
            found[name] = value
    return found


def _key(headers: dict[bytes, bytes]) -> str | None:
    auth, xkey = headers.get(b"authorization"), headers.get(b"x-api-key")
    return presented_key(auth.decode("latin-1") if auth else None, xkey.decode("latin-1") if xkey else None)


class Boundary:
    """ASGI: the boundary above, around ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        keys: Authenticator,
        limit: int,
        policies: Policies,
        sinks: Sequence[Sink],
        admit: Sequence[Admit] = (),
        limits: RateLimits | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self.app = app
        self.outbox = outbox if outbox is not None else Outbox()
        self.keys = keys
        self.limit = limit
        self.policies = policies
        self.sinks = sinks
        self.admit = admit
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        policy = self.policies.find(path)
        headers = _headers(scope)
        given, parent = headers.get(b"x-request-id"), headers.get(b"traceparent")
        rec = RequestRecord(
            id=given.decode("latin-1") if given else new_id("req"),
            method=scope["method"],
            path=path,
            api=policy.api,
            admin=policy.admin,
            sinks=self.sinks,
            traceparent=parent.decode("latin-1") if parent else None,
        )
        token = record.current.set(rec)
        reply = _Reply(send, rec)
        hang_up = _HangUp(receive, reply)
        grant: Grant | None = None
        try:
            if policy.auth:
                rec.caller = await self.keys.check(_key(headers), admin=policy.admin)
                if rec.caller.budgeted:  # its spend so far counts its requests that just ended
                    self.outbox.drain()
                for check in self.admit:
                    check(rec.caller)
            self._check_declared(headers.get(b"content-length"))
            receive = _bounded(receive, self.limit, hang_up.arm)
            counted = self.limits.of(rec.caller) if self.limits and rec.caller else None
            if counted is not None:
                grant, receive = await self._count(*counted, receive, reply)
            await self.app(scope, receive, reply)
        except ApiError as exc:
            if isinstance(exc, RateLimitExceeded):
                rec.rate_limited = exc.limit
                reply.extra = exc.quota.headers()
            await reply.error(exc, policy.render)
        except asyncio.CancelledError:
            if not hang_up.gone:
                rec.error = rec.error or "cancelled"
                raise
            if hang_up.task is not None:
                hang_up.task.uncancel()  # the client left: there is no one to answer
        except Exception as exc:
            errlog.exception("request %s failed", rec.id)
            await reply.error(InternalError(f"Internal error ({type(exc).__name__})."), policy.render)
        finally:
            hang_up.stop()
            if grant is not None and self.limits is not None:
                self.limits.limiter.finish(grant, _used(rec, grant))
            if not reply.started:  # no answer at all: the client left before it
                rec.status = 499
                rec.error = rec.error or "client_disconnected"
            # The sinks (log line, ledger, metrics, recording) run later (record.Outbox): the
            # answer's last bytes, gathered by the corked transport in this turn, leave first, and
            # its client reads them before the sinks take the CPU.
            rec.stop()
            self.outbox.put(rec)
            record.current.reset(token)

    async def _count(
        self, key: str, limits: Limits, receive: Receive, reply: _Reply
    ) -> tuple[Grant | None, Receive]:
        """Count the request against its key's limits (429 past one); its tokens are estimated from
        the body, read here for keys with a tokens limit."""
        assert self.limits is not None
        tokens = 0
        if limits.tpm is not None:
            body, receive = await _buffered(receive)
            tokens = estimate(body)
        grant = await self.limits.limiter.acquire(key, limits, tokens)
        if grant is not None:
            reply.extra = grant.quota.headers()
        return grant, receive

    def _check_declared(self, declared: bytes | None) -> None:
        """A declared Content-Length over the limit is refused before a byte of the body is read."""
        if declared is None:
            return
        try:
            too_big = int(declared) > self.limit
        except ValueError as exc:
            raise InvalidRequest("Invalid Content-Length header.") from exc
        if too_big:
            raise PayloadTooLarge(f"The request body is larger than the limit of {self.limit} bytes.")
