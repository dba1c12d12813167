"""Shadow traffic: a fraction of a route's live requests mirrored to a candidate in the background,
both answers recorded (``shadow-ROUTE``, roles ``shadow-live`` and ``shadow-candidate``, one ``id``),
for ``lumbung shadow report`` to compare.

The live request only offers its copy to its route's lane; the copy is put on the lane's bounded
queue once the live request is over (its record closed), or dropped (counted) when the queue is full,
so a slow or hung candidate never reaches the client, and the candidate's call does not run on the
event loop while the live answer it mirrors is still being sent. A lane's
workers send the copies through the gateway (so the candidate may be any route or model), each under
the lane's timeout, and never to a provider the live route's egress policy forbids: the candidate's
targets are checked per request, as well as once at start-up (config/routes.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from lumbung import record
from lumbung.accounts import scopes
from lumbung.config import LOCAL_JURISDICTION, RouteConfig, ShadowConfig, allowed
from lumbung.engines.base import Collector, ForwardRequest
from lumbung.errors import ApiError, ModelNotFound
from lumbung.gateway.router import Gateway
from lumbung.gateway.state import Route
from lumbung.proof.exchange import Exchange
from lumbung.proof.recorder import Recorder
from lumbung.proof.wire import answer_body, chat_body
from lumbung.record import RequestRecord
from lumbung.surfaces.openai import parse_chat_request
from lumbung.types import ChatRequest, Completion, CompletionRequest

log = logging.getLogger(__name__)
SHADOW_API = "shadow"  # the api of a shadow call's own record: the tap leaves it alone
OUTCOMES = ("queued", "dropped", "answered", "failed", "egress_denied")


def shadow_recording(route: str) -> str:
    return f"shadow-{route}"


@dataclass(slots=True)
class Copy:
    id: str
    request: ChatRequest | ForwardRequest
    created: float
    stream: bool  # asked for as a stream, or whole: the candidate is asked the same way
    egress: tuple[str, ...] = ()  # the live request's key's egress scope (accounts/scopes.py)


@dataclass(slots=True)
class Pending:
    """A live request's copy, chosen for its route's shadow, sent once the live request is over."""

    shadows: Shadows
    lane: Lane
    copy: Copy

    @property
    def candidate(self) -> str:
        return self.lane.config.target

    def send(self) -> bool:
        return self.shadows.send(self.lane, self.copy)


@dataclass
class Lane:
    """One route's shadow: its queue, its workers and its counts."""

    route: str
    config: ShadowConfig
    queue: asyncio.Queue[Copy] = field(init=False)
    counts: Counter[str] = field(default_factory=lambda: Counter({o: 0 for o in OUTCOMES}))
    workers: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.config.queue)


class Shadows:
    def __init__(self, gateway: Gateway, recorder: Recorder, routes: list[RouteConfig], rng: Any) -> None:
        self.gateway = gateway
        self.recorder = recorder
        self.rng = rng
        self.lanes = {r.name: Lane(r.name, r.shadow) for r in routes if r.shadow is not None}

    def offer(
        self,
        route: Route,
        request: ChatRequest | CompletionRequest | ForwardRequest,
        rid: str,
        stream: bool,
    ) -> Pending | None:
        """On the live request's path: a copy of it chosen for the route's shadow (``send`` it when
        the live request is over), or None."""
        lane = self.lanes.get(route.name)
        if (
            lane is None
            or isinstance(request, CompletionRequest)
            or self.rng.random() >= lane.config.fraction
        ):
            return None
        policy = scopes.current()  # the copy leaves the request's context: its key's scope goes along
        egress = policy.egress if policy is not None else ()
        return Pending(self, lane, Copy(rid, request, time.time(), stream, egress))

    def send(self, lane: Lane, copy: Copy) -> bool:
        """Queue a copy for the lane's workers (on the event loop); False: dropped, the queue full."""
        if not lane.workers:
            self._start(lane)
        try:
            lane.queue.put_nowait(copy)
        except asyncio.QueueFull:
            lane.counts["dropped"] += 1
            return False
        lane.counts["queued"] += 1
        return True

    def _start(self, lane: Lane) -> None:
        # A context of their own: started from a live request's task, they must not carry its record.
        loop = asyncio.get_running_loop()
        lane.workers = [
            loop.create_task(self._work(lane), name=f"shadow-{lane.route}-{i}", context=contextvars.Context())
            for i in range(lane.config.concurrency)
        ]

    async def aclose(self) -> None:
        tasks = [t for lane in self.lanes.values() for t in lane.workers]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for lane in self.lanes.values():
            lane.workers = []

    async def idle(self) -> None:
        """Until every queued copy has been answered (tests)."""
        for lane in self.lanes.values():
            await lane.queue.join()

    async def _work(self, lane: Lane) -> None:
        while True:
            copy = await lane.queue.get()
            try:
                await self._mirror(lane, copy)
            except Exception:
                log.exception("shadow %s: a mirrored request failed unexpectedly", lane.route)
                lane.counts["failed"] += 1
            finally:
                lane.queue.task_done()

    async def _mirror(self, lane: Lane, copy: Copy) -> None:
        target = lane.config.target
        try:
            request = _typed(copy.request)
        except ApiError as exc:
            lane.counts["failed"] += 1
            log.warning("shadow %s: request %s cannot be mirrored: %s", lane.route, copy.id, exc.message)
            return
        if not self._may_send(lane, copy.egress):
            lane.counts["egress_denied"] += 1
            return
        stream = copy.stream
        # A record of its own: the gateway notes the candidate's attempts on it (which target answered,
        # its first token), and the tap knows to leave it alone. No sinks: not a client's request.
        rec = RequestRecord(id=copy.id, method="POST", path="/shadow", api=SHADOW_API, stream=stream)
        token = record.current.set(rec)
        completion: Completion | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(lane.config.timeout):
                completion = await self._ask(replace(request, model=target), stream)
        except TimeoutError:
            error = "timeout"
        except ApiError as exc:
            error = exc.code or exc.type
        finally:
            record.current.reset(token)
            rec.close()
        lane.counts["answered" if error is None else "failed"] += 1
        ttft = rec.first_token_seconds
        live_body = copy.request.body if isinstance(copy.request, ForwardRequest) else None
        body = dict(live_body) if live_body is not None else chat_body(request, request.model, stream)
        exchange = Exchange(
            id=copy.id,
            request=body,
            response=None if completion is None else answer_body(request, target, completion),
            created=copy.created,
            surface=SHADOW_API,
            route=target,
            provider=rec.target,
            stream=stream,
            latency_ms=rec.latency_ms,
            ttft_ms=None if ttft is None else round(ttft * 1000, 1),
            error=error,
            role="shadow-candidate",
        )
        self.recorder.submit(shadow_recording(lane.route), lambda: exchange)

    async def _ask(self, request: ChatRequest, stream: bool) -> Completion:
        if not stream:
            return await self.gateway.complete(request)
        collector = Collector()
        chunks = self.gateway.stream(request)
        try:
            async for chunk in chunks:
                collector.add(chunk)
                if chunk.finish_reason is not None:
                    break
        finally:
            await chunks.aclose()
        return collector.result()

    def _may_send(self, lane: Lane, key_egress: tuple[str, ...] = ()) -> bool:
        """Every target the candidate may reach is one the live route's data may go to, and the
        live request's key's (``key_egress``; empty: no scope of its own)."""
        try:
            live = self.gateway.resolve(lane.route)
            candidate = self.gateway.resolve(lane.config.target)
        except ModelNotFound:
            return False
        for member in candidate.members():
            where = member.state.provider.jurisdiction if candidate.guarded else LOCAL_JURISDICTION
            if not allowed(where, live.egress) or not allowed(where, self.gateway.egress):
                return False
            if key_egress and not allowed(where, list(key_egress)):
                return False
        return True


def _typed(request: ChatRequest | ForwardRequest) -> ChatRequest:
    """A forwarded request's body parsed as the OpenAI surface parses one."""
    if isinstance(request, ChatRequest):
        return request
    return parse_chat_request(request.raw or json.dumps(request.body).encode())[0]
