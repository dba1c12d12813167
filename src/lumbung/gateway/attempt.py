"""One call to one target, as the gateway owns it: counted in flight from its start to its close, its
first item awaited under the first-token timeout (or the probe's, or the whole call's), the rest under
the idle timeout, all on the gateway's clock and within the request's deadline; its outcome recorded
on the target once (breaker, cut-off mark, Retry-After cool-down); its usage kept.

Typed answers (core chunks, whole completions) and forwarded bytes (the pass-through path) go through
the same object, so a request is accounted and bounded the same way on every path.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from lumbung.clock import TimerClock
from lumbung.errors import (
    ApiError,
    InvalidRequest,
    Overloaded,
    ProviderCutOff,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from lumbung.gateway.state import Member
from lumbung.gateway.watchdog import IdleWatchdog
from lumbung.record import RequestRecord
from lumbung.types import Usage

log = logging.getLogger("lumbung.gateway.router")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """What a backend returned for one attempt: its ``items``, how to tell the final one, and how to
    read the usage the answer reported (given the final item)."""

    items: AsyncGenerator[T, None]
    is_last: Callable[[T], bool]
    usage_of: Callable[[T], Usage | None]


class Attempt(Generic[T]):
    """``call`` on ``member``'s backend. ``deadline``: the request's, on ``clock``; ``whole``: the first
    item is the entire answer; ``probe``: the breaker's half-open probe (its own timeout). The
    timeouts apply only when ``first`` and ``next`` are used (a local model's own name is served
    without them: the engine bounds its requests itself)."""

    def __init__(
        self,
        member: Member,
        call: Call[T] | None,
        *,
        clock: TimerClock,
        record: RequestRecord | None,
        deadline: float = math.inf,
        whole: bool = False,
        probe: bool = False,
    ) -> None:
        self.member = member
        self.state = member.state
        self.provider = member.state.provider
        # None: one call that is not a stream (embeddings), awaited by the gateway itself.
        self.items = call.items if call is not None else _no_items()
        self.is_last = call.is_last if call is not None else _always
        self.usage_of = call.usage_of if call is not None else _no_usage
        self.clock = clock
        self.record = record
        self.usage: Usage | None = None
        self.error: ApiError | None = None
        self.answered = False
        # When the first item came (perf_counter, as the request record's start): time to first token.
        self.first_at: float | None = None
        self.started = time.perf_counter()
        timeouts = self.provider.timeouts
        self.end = min(deadline, clock() + timeouts.total)
        limit = self.end - clock()
        if not whole:  # a whole answer (its first item is all of it) may take the call's total time
            limit = min(timeouts.first_token, limit)
        if probe:
            limit = min(limit, self.state.breaker.policy.probe_timeout)
        self.first_limit = max(0.0, limit)
        self._watchdog: IdleWatchdog | None = None
        self._open = True
        self.state.inflight += 1
        self.state.requests += 1

    @property
    def key(self) -> str:
        return self.member.key

    async def first(self) -> T:
        """The first item, under the first-token (or probe, or whole-call) timeout. A failure is
        recorded on the target (not the client's own InvalidRequest) and raised as an ApiError."""
        # One timer rather than ``asyncio.timeout`` (a fraction of the cost, see watchdog.py).
        timer = IdleWatchdog(self.first_limit, self.clock() + self.first_limit, self.clock)
        item = await self._next(timer, "first token", close_timer=True)
        self.first_at = time.perf_counter()
        return item

    async def next(self) -> T:
        """The next item, under the idle timeout and the call's end."""
        if self._watchdog is None:
            self._watchdog = IdleWatchdog(self.provider.timeouts.idle, self.end, self.clock)
        return await self._next(self._watchdog, "next token", close_timer=False)

    async def _next(self, timer: IdleWatchdog, phase: str, *, close_timer: bool) -> T:
        try:
            timer.waiting()
            try:
                return await anext(self.items)
            except asyncio.CancelledError as exc:
                if not timer.claim(asyncio.current_task()):
                    raise
                raise self.failed(TimeoutError(), phase) from exc
            except InvalidRequest:
                raise  # the client's fault: another target would refuse it too
            except (ApiError, TimeoutError, StopAsyncIteration) as exc:
                raise self.failed(exc, phase) from exc
            finally:
                timer.done()
        finally:
            if close_timer:
                timer.close()

    def failed(self, exc: BaseException, phase: str) -> ApiError:
        """Record the failure on the target (once per attempt) and return it as an ApiError."""
        if self.error is not None:
            return self.error
        error = self._as_error(exc, phase)
        self.error = error
        record_failure(self.member, error, self.clock)
        return error

    def succeeded(self, last: T) -> None:
        """The answer is complete: ``last`` is its final item."""
        self.settled(self.usage_of(last))

    def settled(self, usage: Usage | None) -> None:
        """The call answered, reporting ``usage``."""
        self.usage = usage
        self.answered = True
        self.state.breaker.success()

    def _as_error(self, exc: BaseException, phase: str) -> ApiError:
        if isinstance(exc, ApiError):
            return exc
        name = self.provider.name
        if isinstance(exc, TimeoutError):
            return UpstreamTimeout(f"provider {name!r}: timed out waiting for the {phase}")
        return UpstreamError(f"provider {name!r}: the stream ended before the answer was complete")

    async def close(self) -> None:
        """End the call (at once, also mid-answer: a client that went away); idempotent."""
        if not self._open:
            return
        self._open = False
        if self._watchdog is not None:
            self._watchdog.close()
        self.state.inflight -= 1
        if self.record is not None:
            error = None if self.answered else "cancelled"
            if self.error is not None:
                error = self.error.code or self.error.type
            self.record.attempted(self.key, error, self.usage, self.first_at, self.started)
        await self.items.aclose()


async def _no_items() -> AsyncGenerator[Any, None]:
    return
    yield


def _always(item: object) -> bool:
    return True


def _no_usage(item: object) -> Usage | None:
    return None


def record_failure(member: Member, error: ApiError, clock: TimerClock) -> None:
    """What a failed call tells of its target: cut off, rate limited (cool down), or one more failure
    for its breaker."""
    state = member.state
    state.failures += 1
    state.last_error = error.message[:300]
    if isinstance(error, ProviderCutOff):
        state.provider.cut_off(error.message)
        log.warning("provider %s is cut off: %s", state.provider.name, error.message)
        if state.provider.marks is not None:
            state.provider.marks.cut_off(state.provider)
    elif isinstance(error, (RateLimited, Overloaded)):
        # Alive but limiting: wait as told, without counting it against the breaker.
        state.cool_until = clock() + (error.retry_after if error.retry_after is not None else 1.0)
        if state.breaker.probe_started is not None:
            state.breaker.probe_started = None
    elif state.breaker.failure() and state.provider.marks is not None:
        state.provider.marks.opened(state)
