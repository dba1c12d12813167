"""A cheap bound on silence: one timer per streamed answer instead of one per chunk.

``asyncio.timeout`` around every chunk costs ~18 us per chunk against 0.2 us for the bare await
(uvloop, the 2-core dev machine; docs/performance.md); this re-arms a single timer only when it
fires. It counts silence only while the stream is waiting on its upstream, so a slow client (the
stream blocked on writing to it) is never mistaken for a silent provider. Its time is the gateway's
clock (the event loop's timers in production, a fake clock's in tests).
"""

from __future__ import annotations

import asyncio

from lumbung.clock import Timer, TimerClock, monotonic


class IdleWatchdog:
    """Cancels the waiting task when no item arrives for ``idle`` seconds, or at ``end`` (``clock`` time)."""

    def __init__(self, idle: float, end: float, clock: TimerClock = monotonic) -> None:
        self.clock = clock
        self.idle = idle
        self.end = end
        self.since = clock()
        self.task: asyncio.Task[object] | None = None
        self.fired = False
        self._handle: Timer = clock.call_at(min(self.since + idle, end), self._check)

    def waiting(self) -> None:
        """Call before awaiting the upstream."""
        self.since = self.clock()
        self.task = asyncio.current_task()

    def done(self) -> None:
        """Call when the awaited item (or error) arrived."""
        self.task = None

    def _check(self) -> None:
        now = self.clock()
        due = min(self.since + self.idle, self.end)
        if self.task is not None and now >= due:
            self.fired = True
            self.task.cancel()
            return
        # Not waiting, or not yet due: look again when it could next be due.
        self._handle = self.clock.call_at(max(due, now + self.idle / 4), self._check)

    def claim(self, task: asyncio.Task[object] | None) -> bool:
        """After a CancelledError: True when it was this watchdog's (then the cancel is absorbed)."""
        if not self.fired:
            return False
        if task is not None:
            task.uncancel()
        return True

    def close(self) -> None:
        self._handle.cancel()
