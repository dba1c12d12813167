"""Time as a parameter: the gateway's primitives, its watchdog and the model manager take a clock, so
tests step through timeouts, cool-downs and keep-alives with a fake one instead of sleeping.

A ``Clock`` reads seconds on a monotonic scale; a ``TimerClock`` can also run a callback when it reads a
given time (the event loop's timers for the real one, ``advance`` for the fake). A leaf module: engines
and the gateway both import it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def __call__(self) -> float:
        """Seconds on a monotonic scale."""
        ...


class Timer(Protocol):
    def cancel(self) -> None: ...


class TimerClock(Clock, Protocol):
    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback`` once the clock reads ``when`` (from the running event loop)."""
        ...


class Monotonic:
    """``time.monotonic``, with timers on the running event loop."""

    def __call__(self) -> float:
        return time.monotonic()

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        return asyncio.get_running_loop().call_later(when - time.monotonic(), callback)


monotonic = Monotonic()


class _FakeTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that moves only when told (tests); ``advance`` runs the timers that fall due."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._timers: list[tuple[float, int, Callable[[], object], _FakeTimer]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        timer = _FakeTimer()
        heapq.heappush(self._timers, (when, next(self._order), callback, timer))
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while self._timers and self._timers[0][0] <= self.now:
            _, _, callback, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                callback()

    @property
    def pending(self) -> int:
        """Timers set and not yet run or cancelled."""
        return sum(not timer.cancelled for *_, timer in self._timers)


async def sleep(clock: TimerClock, seconds: float) -> None:
    """Wait ``seconds`` on ``clock`` (a fake clock's ``advance`` ends the wait)."""
    done = asyncio.get_running_loop().create_future()

    def wake() -> None:
        if not done.done():
            done.set_result(None)

    timer = clock.call_at(clock() + seconds, wake)
    try:
        await done
    finally:
        timer.cancel()
