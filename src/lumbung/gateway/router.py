"""The gateway: a public model name -> a route -> one target at a time, with failover.

A request may move to another target only until its first chunk of content exists; the surface
awaits that chunk before it sends a byte, so failover is invisible to the client. After it, a failure
travels down the stream as an error (the surface renders it as an error event), never a retry.

    choose (tier order; breaker, cut-off, cool-down; balancer) -> attempt (first-token timeout)
      -> failed: record (breaker / cut-off / Retry-After), spend retry budget, next target
      -> first chunk: commit; stream the rest under the idle timeout and the one deadline
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol, TypeVar, cast

from lumbung import record
from lumbung.accounts import scopes
from lumbung.accounts.policy import KeyPolicy
from lumbung.aio import gather_or_cancel
from lumbung.clock import TimerClock, monotonic, sleep
from lumbung.config import LOCAL_JURISDICTION, Timeouts, allowed
from lumbung.engines.base import Backend, Collector, Embeddings, Forwarder, ForwardRequest, Resident, collect
from lumbung.errors import (
    ApiError,
    ConfigError,
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    RateLimited,
    UnsupportedParameter,
    UpstreamError,
    UpstreamTimeout,
)
from lumbung.gateway.attempt import Attempt, Call
from lumbung.gateway.balancer import affinity_key, choose
from lumbung.gateway.breaker import Breaker, BreakerState
from lumbung.gateway.retry import Deadline, backoff
from lumbung.gateway.state import Member, ProviderState, Route, TargetState
from lumbung.gateway.status import snapshot
from lumbung.gateway.tap import Tap, tee
from lumbung.gateway.timeline import Timeline
from lumbung.types import ChatRequest, Chunk, Completion, CompletionRequest, EmbeddingInputs, ModelInfo, Usage

log = logging.getLogger(__name__)
Request = ChatRequest | CompletionRequest
MAX_ROUNDS = 2  # passes over a route's targets; the second only after a backoff or a Retry-After
# The longest a request waits for a target to come back; a longer Retry-After goes back to the client.
MAX_PAUSE = 1.0


T = TypeVar("T")
R = TypeVar("R")


class Watcher(Protocol):
    """Something that watches providers in the background while the server runs (a vLLM fleet)."""

    def start(self) -> None: ...

    async def aclose(self) -> None: ...


def _finished(chunk: Chunk) -> bool:
    return chunk.finish_reason is not None


def _usage(chunk: Chunk) -> Usage | None:
    return chunk.usage


def _chunks(items: AsyncGenerator[Chunk, None]) -> Call[Chunk]:
    return Call(items, _finished, _usage)


async def _whole(attempt: Attempt[Chunk]) -> Completion:
    """A whole answer from one attempt; failing at any point of it, it may still fail over."""
    collector = Collector()
    chunk = await attempt.first()
    collector.add(chunk)
    while collector.last is None:
        chunk = await attempt.next()
        collector.add(chunk)
    completion = collector.result()
    attempt.succeeded(chunk)
    return completion


def prompt_text(request: Request) -> str:
    if isinstance(request, CompletionRequest):
        return request.prompt
    return "\x00".join(f"{m.role}:{m.content or ''}" for m in request.messages)


class Gateway:
    """Routes requests to backends by model name. Every surface talks to backends only through here.

    ``backends`` are in-process engines: each of their models is reachable by its own name (and
    aliases) as a route of one target. ``routes`` add public names over providers' targets.
    """

    def __init__(
        self,
        backends: list[Backend],
        *,
        providers: list[ProviderState] | None = None,
        routes: list[Route] | None = None,
        egress: list[str] | None = None,
        request_timeout: float = 600.0,
        clock: TimerClock = monotonic,
        rng: random.Random | None = None,
        watchers: Sequence[Watcher] = (),
    ) -> None:
        self.backends = backends
        self.watchers = list(watchers)
        self.providers = list(providers or [])
        self.egress = egress
        self.request_timeout = request_timeout
        self.clock = clock
        self.rng = rng or random.Random()
        self._routes: dict[str, Route] = {}
        # (from provider, to provider) -> requests moved on after a failure, for /metrics.
        self.failovers: Counter[tuple[str, str]] = Counter()
        self.tap: Tap | None = None  # recording and shadowing (proof/tap.py), set by the app
        self.timeline = Timeline(clock)  # the same failovers as a story, for the dashboard
        self._claim_local(self._routes, {})
        # Routes whose every target can relay OpenAI requests as bytes (checked once, not per request).
        self._forwarding: set[str] = set()
        for route in routes or []:
            for name in (route.name, *route.aliases):
                self._claim(name, route)
            if route.passthrough and all(
                isinstance(m.state.provider.backend, Forwarder) for m in route.members()
            ):
                self._forwarding.add(route.name)
            for member in route.members():
                self._check_egress(route, member.state.provider)  # at start-up, and again per attempt

    def _claim_local(self, table: dict[str, Route], old: dict[str, Route]) -> None:
        """Each in-process model by its own name and aliases (reusing ``old`` routes and breakers)."""
        for backend in self.backends:
            local = ProviderState(backend.name, "local", LOCAL_JURISDICTION, backend, Timeouts(), self.clock)
            for info in backend.models():
                route = old.get(info.id)
                if route is None:
                    target = TargetState(local, info.id, Breaker(clock=self.clock))
                    route = Route(info.id, [[Member(target, 1.0)]], guarded=False)
                route.aliases = list(info.aliases)
                for name in (info.id, *info.aliases):
                    if name in table:
                        raise ConfigError(f"model name {name!r} is used twice")
                    table[name] = route

    def refresh(self) -> None:
        """Re-read the in-process models after some were pulled or deleted while serving; configured
        routes stay. On a name clash (ConfigError) the old table stays in place."""
        table = {name: route for name, route in self._routes.items() if route.guarded}
        self._claim_local(table, {r.name: r for r in self._routes.values() if not r.guarded})
        self._routes = table

    @property
    def has_routes(self) -> bool:
        """Whether any configured route exists (beyond local models reached by their own names)."""
        return any(route.guarded for route in self._routes.values())

    def _claim(self, name: str, route: Route) -> None:
        if name in self._routes:
            raise ConfigError(f"model name {name!r} is used twice")
        self._routes[name] = route

    def _check_egress(self, route: Route, provider: ProviderState) -> None:
        for policy in (route.egress, self.egress):
            if not allowed(provider.jurisdiction, policy):
                raise PermissionDenied(
                    f"egress policy: route {route.name!r} may not send data to provider {provider.name!r} "
                    f"(jurisdiction {provider.jurisdiction})",
                    code="egress_denied",
                )

    # -- names -------------------------------------------------------------------------------------

    def resolve(self, name: str) -> Route:
        """The route of public name ``name``, as far as the key of the request being served may use it
        (accounts/scopes.py): 403 for a name outside its scope, or a route none of whose targets its
        egress scope allows."""
        route = self._routes.get(name)
        if route is None:
            raise ModelNotFound(
                f"The model `{name}` does not exist or you do not have access to it.", param="model"
            )
        policy = scopes.current()
        if policy is not None:
            self._check_scope(policy, name, route)
        return route

    def _check_scope(self, policy: KeyPolicy, name: str, route: Route) -> None:
        if not scopes.names_allowed(policy, (route.name, *route.aliases)):
            raise PermissionDenied(
                f"This API key may not use model `{name}`; it may use: {scopes.scope_text(policy)}.",
                param="model",
                code="model_not_allowed",
            )
        if route.guarded and not any(self._reachable(policy, m) for m in route.members()):
            raise PermissionDenied(
                f"This API key's data may go only to {', '.join(policy.egress)} (and local models); "
                f"no target of model `{name}` is there.",
                param="model",
                code="egress_denied",
            )

    @staticmethod
    def _reachable(policy: KeyPolicy | None, member: Member) -> bool:
        """Whether the key's egress scope lets its data go to ``member``'s provider."""
        return scopes.egress_allowed(policy, member.state.provider.jurisdiction)

    def visible(self, name: str) -> bool:
        """Whether the key of the request being served may use ``name`` (listings show only those)."""
        try:
            self.resolve(name)
        except (ModelNotFound, PermissionDenied):
            return False
        return True

    def route_name(self, name: str) -> str | None:
        """The route ``name`` resolves to (aliases folded into it), None for an unknown name: what
        /metrics labels a request with, so clients' made-up names never create series."""
        route = self._routes.get(name)
        return route.name if route is not None else None

    def targets(self) -> list[TargetState]:
        """Every configured route's targets, each once (a target shared by routes is one state)."""
        seen: dict[int, TargetState] = {}
        for route in self._routes.values():
            if route.guarded:
                for member in route.members():
                    seen.setdefault(id(member.state), member.state)
        return list(seen.values())

    def models(self) -> list[ModelInfo]:
        """Every model and route the key of the request being served may use."""
        out = [info for backend in self.backends for info in backend.models()]
        for name, route in self._routes.items():
            if name == route.name and route.guarded:
                targets = [[m.key for m in tier] for tier in route.tiers]
                out.append(ModelInfo(id=route.name, aliases=list(route.aliases), details={"tiers": targets}))
        if scopes.current() is not None:
            out = [info for info in out if self.visible(info.id)]
        return out

    def model(self, name: str) -> ModelInfo:
        """One model's description (403 for one the key may not use, as ``resolve``)."""
        route = self.resolve(name)
        for info in self.models():
            if info.id == route.name:
                return info
        raise ModelNotFound(f"The model `{name}` does not exist.", param="model")

    # -- streaming with failover ----------------------------------------------------------------------

    def stream(self, request: Request) -> AsyncGenerator[Chunk, None]:
        route = self.resolve(request.model)
        if not route.guarded:
            return self._tapped(route, request, self._direct(route.tiers[0][0], request))
        key = affinity_key(prompt_text(request)) if route.prefix_affinity else None

        def start(target: TargetState) -> Call[Chunk]:
            return _chunks(target.provider.backend.stream(replace(request, model=target.model)))

        return self._tapped(route, request, self._stream(route, key, start, whole=False))

    def _tapped(
        self,
        route: Route,
        request: Request | ForwardRequest,
        items: AsyncGenerator[T, None],
        stream: bool = True,
    ) -> AsyncGenerator[T, None]:
        """``items``, watched on their way out when the tap wants this request (recording, shadow)."""
        watch = self.tap.watch(route, request, stream) if self.tap is not None else None
        return items if watch is None else tee(items, watch)

    async def complete(self, request: Request) -> Completion:
        """A whole (non-streamed) answer. Nothing reaches the client before it is complete, so a
        failure at any point of it, not only before the first chunk, moves the request on."""
        route = self.resolve(request.model)
        if not route.guarded:
            return await collect(self.stream(request))
        key = affinity_key(prompt_text(request)) if route.prefix_affinity else None

        def start(target: TargetState) -> Call[Chunk]:
            return _chunks(target.provider.backend.stream(replace(request, model=target.model)))

        watch = self.tap.watch(route, request, False) if self.tap is not None else None
        attempt, completion = await self._commit(route, key, start, _whole, whole=False)
        await attempt.close()
        if watch is not None:
            watch.whole(completion)
        return completion

    async def complete_all(self, requests: Sequence[Request]) -> list[Completion]:
        """Several whole answers at once (n > 1); when one fails, the others are stopped."""
        return await gather_or_cancel(self.complete(r) for r in requests)

    def forwards(self, name: str) -> str | None:
        """The route name to forward a request for model ``name`` under, or None when its route does
        not pass requests through (then the typed path serves it)."""
        route = self._routes.get(name)
        return route.name if route is not None and route.name in self._forwarding else None

    def forward(self, request: ForwardRequest) -> AsyncGenerator[bytes, None]:
        """Pass ``request`` through to the targets of route ``request.public`` as bytes, with the same
        failover, breaker, timeouts and accounting as ``stream``. A whole answer is one item, so it
        may take the provider's total timeout."""
        route = self.resolve(request.public)
        if route.name not in self._forwarding:
            raise UnsupportedParameter(f"route {route.name!r} does not pass requests through", param="model")
        key = affinity_key(request.prompt_text()) if route.prefix_affinity else None

        def start(target: TargetState) -> Call[bytes]:
            # Checked when the gateway was built: every target of a forwarding route is a Forwarder.
            forwarded = cast(Forwarder, target.provider.backend).forward(request, target.model)
            return Call(forwarded.items, forwarded.is_last, lambda _: forwarded.usage())

        stream = self._stream(route, key, start, whole=not request.stream)
        return self._tapped(route, request, stream, request.stream)

    def _choose(
        self, route: Route, tried: set[Member], key: str | None, policy: KeyPolicy | None = None
    ) -> Member | None:
        for tier in route.tiers:
            ready = [
                m
                for m in tier
                if m not in tried and m.state.blocked_for() == 0.0 and self._reachable(policy, m)
            ]
            if ready:
                return choose(ready, key, self.rng, route.affinity_load_factor)
        return None

    async def _direct(self, member: Member, request: Request) -> AsyncGenerator[Chunk, None]:
        """A local model by its own name: no failover, no timeouts of the gateway's (the engine bounds
        its own requests), but an attempt all the same, so it is counted and accounted."""
        state = member.state
        stream = state.provider.backend.stream(replace(request, model=state.model))
        notes = record.current.get()
        attempt = Attempt(member, _chunks(stream), clock=self.clock, record=notes)
        if notes is not None:
            notes.serving = state.key
        try:
            async for chunk in stream:
                if attempt.first_at is None:
                    attempt.first_at = time.perf_counter()
                if chunk.finish_reason is not None:
                    attempt.answered, attempt.usage = True, chunk.usage
                yield chunk
        except ApiError as exc:
            attempt.error = exc
            raise
        finally:
            await attempt.close()

    async def _stream(
        self, route: Route, key: str | None, start: Callable[[TargetState], Call[T]], *, whole: bool
    ) -> AsyncGenerator[T, None]:
        attempt, item = await self._commit(route, key, start, Attempt.first, whole=whole)
        # Committed: from here on the answer belongs to this target; a failure is raised into the
        # stream, never retried. A consumer that closes this generator (the client went away) lands
        # in ``finally``, which closes the upstream call at once.
        try:
            while not attempt.is_last(item):
                yield item
                item = await attempt.next()
            # Recorded before the last item goes out: consumers stop there without asking again.
            attempt.succeeded(item)
            yield item
        finally:
            await attempt.close()

    async def _commit(
        self,
        route: Route,
        key: str | None,
        start: Callable[[TargetState], Call[T]],
        settle: Callable[[Attempt[T]], Awaitable[R]],
        *,
        whole: bool,
    ) -> tuple[Attempt[T], R]:
        """Attempts on the route's targets until one ``settle``s (its first item, or its whole
        answer): that attempt, still open, and what it settled with. Failures move on to the next
        target, in tier order, then one more pass after a pause; the client's own errors do not."""
        deadline = Deadline(self.request_timeout, self.clock)
        route.budget.record_request()
        notes = record.current.get()
        policy = notes.caller.policy if notes is not None and notes.caller is not None else None
        tried: set[Member] = set()
        failures: list[tuple[Member, ApiError]] = []
        attempts, rounds = 0, 1
        while True:
            member = self._choose(route, tried, key, policy)
            if member is None:
                pause = self._next_round_pause(route, rounds, deadline, policy)
                if pause is None:
                    raise self._exhausted(route, failures, deadline)
                await sleep(self.clock, pause)
                rounds += 1
                tried.clear()
                continue
            tried.add(member)
            state = member.state
            self._check_egress(route, state.provider)
            if attempts > 0 and not route.budget.try_retry():
                log.warning("route %s: retry budget spent", route.name)
                raise self._exhausted(route, failures, deadline, budget_spent=True)
            probe = state.breaker.acquire()
            if probe is False:
                continue
            attempts += 1
            if failures:
                self.failovers[failures[-1][0].state.provider.name, state.provider.name] += 1
            attempt = Attempt(
                member,
                start(state),
                clock=self.clock,
                record=notes,
                deadline=deadline.at,
                whole=whole,
                probe=probe is None,
            )
            try:
                settled = await settle(attempt)
            except InvalidRequest:
                await attempt.close()
                raise  # the client's fault: another target would refuse it too
            except ApiError as exc:
                error = attempt.failed(exc, "first token")
                await attempt.close()
                failures.append((member, error))
                log.info(
                    "route %s: %s failed before the first token: %s", route.name, member.key, error.message
                )
            except BaseException:
                await attempt.close()
                raise
            else:
                self._answered(route, state, failures, notes)
                return attempt, settled

    def _answered(
        self,
        route: Route,
        state: TargetState,
        failures: list[tuple[Member, ApiError]],
        notes: record.RequestRecord | None,
    ) -> None:
        """``state`` answers the request: the timeline learns where traffic went, the request's
        record which target serves it (its ``x-lumbung-target``)."""
        if failures:
            failed = [(m.state.provider.name, e.message) for m, e in failures]
            self.timeline.moved(route.name, failed, state.key)
        self.timeline.answered(route.name, state.provider.name, state.key)
        if notes is not None:
            notes.serving = state.key

    def _next_round_pause(
        self, route: Route, rounds: int, deadline: Deadline, policy: KeyPolicy | None = None
    ) -> float | None:
        """How long to wait before another pass over the route, or None to give up."""
        if rounds >= MAX_ROUNDS:
            return None
        waits = [
            m.state.blocked_for()
            for m in route.members()
            if not m.state.provider.is_cut_off and self._reachable(policy, m)
        ]
        soonest = min(waits, default=None)
        if soonest is None:
            return None
        pause = max(soonest, backoff(rounds, rng=self.rng))
        if pause > MAX_PAUSE or pause >= deadline.remaining() or not route.budget.try_retry():
            return None
        return pause

    def _exhausted(
        self,
        route: Route,
        failures: list[tuple[Member, ApiError]],
        deadline: Deadline,
        budget_spent: bool = False,
    ) -> ApiError:
        if failures:
            self.timeline.moved(route.name, [(m.state.provider.name, e.message) for m, e in failures], None)
        if len(failures) == 1 and len(route.members()) == 1:
            return failures[0][1]
        if deadline.expired:
            return UpstreamTimeout(
                f"route {route.name!r}: the request deadline passed before any target answered"
            )
        if failures and all(isinstance(e, RateLimited) for _, e in failures):
            waits = [e.retry_after for _, e in failures if e.retry_after is not None]
            return RateLimited(
                f"every target of route {route.name!r} is rate limited", retry_after=min(waits, default=1.0)
            )
        if not failures:
            blocked = [f"{m.key} ({self._why_blocked(m)})" for m in route.members()]
            waits = [m.state.blocked_for() for m in route.members()]
            return Overloaded(
                f"no target of route {route.name!r} is available now: " + ", ".join(blocked),
                retry_after=max(1.0, min(waits, default=1.0)),
            )
        said = "; ".join(f"{m.key}: {e.message}" for m, e in failures)
        if budget_spent:
            return UpstreamError(
                f"route {route.name!r}: {said} (no failover: the route's retry budget is spent)",
                code="retry_budget_exhausted",
            )
        return UpstreamError(
            f"every target of route {route.name!r} failed: {said}", code="all_targets_failed"
        )

    @staticmethod
    def _why_blocked(member: Member) -> str:
        state = member.state
        replica = state.provider.replica
        if replica is not None and not replica.accepting(state.provider.clock()):
            return replica.why_not(state.provider.clock())
        if state.provider.is_cut_off:
            return "provider cut off"
        if state.breaker.state is not BreakerState.CLOSED:
            return f"circuit {state.breaker.state.value}"
        return "rate limited"

    # -- embeddings and tokens: first available target, in tier order ---------------------------------

    async def embed(self, name: str, inputs: EmbeddingInputs) -> Embeddings:
        route = self.resolve(name)
        policy = scopes.current()
        last: ApiError | None = None
        for member in route.members():
            if (route.guarded and member.state.blocked_for() > 0) or not self._reachable(policy, member):
                continue
            self._check_egress(route, member.state.provider)
            # One call, not a stream: in flight while it runs, its prompt tokens noted as its usage.
            attempt: Attempt[Embeddings] = Attempt(
                member, None, clock=self.clock, record=record.current.get()
            )
            try:
                result = await member.state.provider.backend.embed(member.state.model, inputs)
                attempt.settled(Usage(prompt_tokens=result.prompt_tokens))
                return result
            except InvalidRequest as exc:
                attempt.error = exc  # the client's fault, not the target's
                raise
            except ApiError as exc:
                if not route.guarded:
                    attempt.error = exc
                    raise
                last = attempt.failed(exc, "answer")
            finally:
                await attempt.close()
        raise last or Overloaded(f"no target of route {route.name!r} is available now", retry_after=1.0)

    async def count_tokens(self, request: Request) -> int:
        """Counted by the first available target that can count (the local engine, Anthropic)."""
        route = self.resolve(request.model)
        policy = scopes.current()
        for member in route.members():
            if (route.guarded and member.state.blocked_for() > 0) or not self._reachable(policy, member):
                continue
            self._check_egress(route, member.state.provider)
            try:
                return await member.state.provider.backend.count_tokens(
                    replace(request, model=member.state.model)
                )
            except UnsupportedParameter:
                if not route.guarded:
                    raise
            except InvalidRequest:
                raise
            except ApiError:
                if not route.guarded:
                    raise
        raise UnsupportedParameter(f"no target of route {route.name!r} can count tokens now", param="model")

    # -- residency: how long local models stay loaded (Ollama's keep_alive) ---------------------------

    def _residents(self, name: str) -> list[tuple[Resident, str]]:
        """The route's targets on backends that keep models loaded; remote providers have none."""
        out: list[tuple[Resident, str]] = []
        for member in self.resolve(name).members():
            backend = member.state.provider.backend
            if isinstance(backend, Resident):
                out.append((backend, member.state.model))
        return out

    def set_keep_alive(self, name: str, seconds: float) -> None:
        for backend, model in self._residents(name):
            backend.set_keep_alive(model, seconds)

    async def unload_when_idle(self, name: str) -> None:
        for backend, model in self._residents(name):
            await backend.unload_when_idle(model)

    async def load(self, name: str) -> None:
        """Load the route's local models (Ollama's empty embed request), generating nothing."""
        for backend, model in self._residents(name):
            await backend.load(model)

    def start(self) -> None:
        """Start what watches providers while serving (vLLM fleets read their replicas' metrics)."""
        for watcher in self.watchers:
            watcher.start()

    async def aclose(self) -> None:
        """Close upstream providers' connection pools (the local engine closes on its own)."""
        for watcher in reversed(self.watchers):  # readers before the processes they read
            await watcher.aclose()
        for provider in self.providers:
            closer = getattr(provider.backend, "aclose", None)
            if closer is not None:
                await closer()

    def reset_health(self) -> None:
        """Forget breakers, cut-off marks and cool-downs (``lumbung drill`` between scenarios)."""
        for route in self._routes.values():
            for member in route.members():
                member.state.breaker = Breaker(member.state.breaker.policy, self.clock)
                member.state.cool_until = 0.0
        for provider in self.providers:
            provider.clear_cut_off()

    # -- status ---------------------------------------------------------------------------------------

    async def probe(self) -> dict[str, bool]:
        """Ask every provider now whether it answers (``GET /admin/providers?probe=1``)."""

        async def one(provider: ProviderState) -> bool:
            try:
                async with asyncio.timeout(provider.timeouts.connect + 1.0):
                    return await provider.backend.health()
            except (TimeoutError, ApiError):
                return False

        results = await asyncio.gather(*(one(p) for p in self.providers))
        return {p.name: ok for p, ok in zip(self.providers, results, strict=True)}

    def status(self) -> dict[str, Any]:
        """What ``GET /admin/providers`` and ``lumbung status`` show."""
        routes = [r for name, r in self._routes.items() if name == r.name and r.guarded]
        return snapshot(self.providers, routes, self.egress)
