"""The gateway's tap (gateway/tap.py) for recording and shadowing: which requests are recorded, and
what each recorded exchange says.

On a request's path only a decision is made (sampling by the route's ``record`` rate, the key's
``record`` rate, the route's ``shadow`` fraction) and a watch attached; the answer's items are kept by
reference as they pass. When the request is over (its record closes, surfaces/boundary.py), the watch
hands a builder to the recorder's queue; the exchange is built, redacted and written on the
recorder's thread. Requests the tap leaves alone: raw-prompt completions (no chat request to replay),
n > 1 choices, and work outside any HTTP request (``lumbung run``, the drill, shadow calls themselves).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

from lumbung import record
from lumbung.config import RouteConfig
from lumbung.engines.base import ForwardRequest
from lumbung.errors import ConfigError
from lumbung.gateway.router import Gateway
from lumbung.gateway.state import Route
from lumbung.proof.exchange import Exchange
from lumbung.proof.recorder import Recorder
from lumbung.proof.shadow import SHADOW_API, Pending, Shadows, shadow_recording
from lumbung.proof.wire import answer_body, chat_body, collected, forwarded_answer
from lumbung.record import RequestRecord
from lumbung.settings import Settings
from lumbung.surfaces.openai import usage_body
from lumbung.types import ChatRequest, Chunk, Completion, CompletionRequest, Usage


@dataclass(frozen=True, slots=True)
class RouteRecording:
    name: str
    rate: float


def key_recording(key_name: str) -> str:
    """The recording a key's sampled requests go to."""
    return f"key-{key_name}"


class ProofTap:
    def __init__(
        self,
        recorder: Recorder,
        routes: list[RouteConfig],
        shadows: Shadows | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.recorder = recorder
        self.shadows = shadows
        self.rng = rng or random.Random()
        self.routes = {
            r.name: RouteRecording(r.record.name or r.name, r.record.rate)
            for r in routes
            if r.record is not None and r.record.rate > 0
        }

    def watch(
        self, route: Route, request: ChatRequest | CompletionRequest | ForwardRequest, stream: bool
    ) -> Watching | None:
        rec = record.current.get()
        if rec is None or rec.api == SHADOW_API or isinstance(request, CompletionRequest):
            return None
        if isinstance(request, ChatRequest) and request.fanout > 1:
            return None
        names: list[str] = []
        mine = self.routes.get(route.name)
        if mine is not None and self.rng.random() < mine.rate:
            names.append(mine.name)
        policy = rec.caller.policy if rec.caller is not None else None
        if policy is not None and policy.record and self.rng.random() < policy.record:
            names.append(key_recording(policy.name))
        pending = self.shadows.offer(route, request, rec.id, stream) if self.shadows is not None else None
        if not names and pending is None:
            return None
        shadow = (route.name, pending) if pending is not None else None
        watch = Watching(self.recorder, names, shadow, request, time.time())
        rec.sinks = (*rec.sinks, watch.finish)
        return watch

    async def aclose(self) -> None:
        """Stop mirroring, then write what is queued (shutdown)."""
        if self.shadows is not None:
            await self.shadows.aclose()
        await asyncio.to_thread(self.recorder.close)


class Watching:
    """One watched request: its answer's items as they pass, then its exchanges once it is over."""

    __slots__ = ("created", "items", "names", "recorder", "request", "shadow", "whole_answer")

    def __init__(
        self,
        recorder: Recorder,
        names: list[str],
        shadow: tuple[str, Pending] | None,
        request: ChatRequest | ForwardRequest,
        created: float,
    ) -> None:
        self.recorder = recorder
        self.names = names
        self.shadow = shadow  # (route, its copy) when a copy is to go to the route's shadow
        self.request = request
        self.created = created
        self.items: list[Any] = []
        self.whole_answer: Completion | None = None

    def add(self, item: object) -> None:
        self.items.append(item)

    def whole(self, completion: Completion) -> None:
        self.whole_answer = completion

    def finish(self, rec: RequestRecord) -> None:
        """The request's record closed (a sink, on the event loop): queue its exchanges."""
        facts = Facts.of(rec)
        for name in self.names:
            self.recorder.submit(name, lambda: self.exchange(facts, "recorded"))
        if self.shadow is not None:
            route, pending = self.shadow
            if pending.send():  # the candidate is asked now, not while the live answer was sent
                extra = {"candidate": pending.candidate}
                self.recorder.submit(
                    shadow_recording(route), lambda: self.exchange(facts, "shadow-live", extra)
                )

    def exchange(self, facts: Facts, role: str, extra: dict[str, Any] | None = None) -> Exchange:
        """Built on the recorder's thread."""
        request, response, stream = self._bodies(facts.model, facts.stream)
        if response is not None and not response.get("usage") and facts.usage is not None:
            # A stream the client took without usage: the gateway still had it from the provider.
            response["usage"] = usage_body(facts.usage)
        return Exchange(
            id=facts.id,
            request=request,
            response=response,
            created=self.created,
            surface=facts.surface,
            route=facts.model,
            provider=facts.provider,
            key=facts.key,
            stream=stream,
            latency_ms=facts.latency_ms,
            ttft_ms=facts.ttft_ms,
            error=facts.error if response is None or facts.error else None,
            role=role,
            extra=extra or {},
        )

    def _bodies(self, model: str | None, stream: bool) -> tuple[dict[str, Any], dict[str, Any] | None, bool]:
        request = self.request
        if isinstance(request, ForwardRequest):
            pieces = [i for i in self.items if isinstance(i, bytes)]
            return dict(request.body), forwarded_answer(pieces, request.stream), request.stream
        name = model or request.model
        completion = self.whole_answer or collected([i for i in self.items if isinstance(i, Chunk)])
        response = answer_body(request, name, completion) if completion is not None else None
        return chat_body(request, name, stream), response, stream


@dataclass(frozen=True, slots=True)
class Facts:
    """What the request's record knew when it closed, copied (the record is the boundary's)."""

    id: str
    surface: str
    model: str | None
    provider: str | None
    key: str | None
    stream: bool
    usage: Usage | None
    latency_ms: float | None
    ttft_ms: float | None
    error: str | None

    @classmethod
    def of(cls, rec: RequestRecord) -> Facts:
        ttft = rec.first_token_seconds
        error = rec.error
        if error is None and rec.status >= 400:
            error = f"http_{rec.status}"
        policy = rec.caller.policy if rec.caller is not None else None
        return cls(
            id=rec.id,
            surface="responses" if rec.path.endswith("/responses") else rec.api,
            model=rec.model,
            provider=rec.target,
            key=policy.id if policy is not None else None,
            stream=rec.stream,
            usage=rec.usage,
            latency_ms=rec.latency_ms,
            ttft_ms=None if ttft is None else round(ttft * 1000, 1),
            error=error,
        )


def build_tap(settings: Settings, gateway: Gateway) -> ProofTap:
    """The app's tap; a shadow target the gateway does not serve is refused here, at start-up."""
    for route in settings.routes:
        if route.shadow is not None and gateway.route_name(route.shadow.target) is None:
            raise ConfigError(
                f"route {route.name!r}: shadow target {route.shadow.target!r} is no route or model this "
                "server serves"
            )
    recorder = Recorder(settings.home, settings.recording)
    rng = random.Random()
    shadows = (
        Shadows(gateway, recorder, settings.routes, rng) if any(r.shadow for r in settings.routes) else None
    )
    return ProofTap(recorder, settings.routes, shadows, rng)
