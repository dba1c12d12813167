"""A circuit breaker per target: closed -> open after consecutive failures -> half-open after a pause,
when exactly one probe request may pass (with its own timeout) -> closed on success, open again on
failure or when the probe does not report back in time."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from lumbung.clock import Clock, monotonic


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class BreakerPolicy:
    failures_to_open: int = 3
    open_for: float = 10.0
    probe_timeout: float = 10.0


class Breaker:
    def __init__(self, policy: BreakerPolicy | None = None, clock: Clock = monotonic) -> None:
        self.policy = policy or BreakerPolicy()
        self.clock = clock
        self._state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.probe_started: float | None = None

    @property
    def state(self) -> BreakerState:
        """The state now: an open breaker whose pause has passed reads half-open."""
        if self._state is BreakerState.OPEN and self.clock() >= self.opened_at + self.policy.open_for:
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def closed(self) -> bool:
        return self._state is BreakerState.CLOSED

    def available(self) -> bool:
        """Whether ``acquire`` would let a request through now (no side effect)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        # Half-open: one probe at a time; a probe that never reported back is lost, and another may go.
        return self.probe_started is None or self.clock() >= self.probe_started + self.policy.probe_timeout

    def acquire(self) -> bool | None:
        """Ask to send a request. False: refused; True: a normal request; None: it is the probe,
        and must be bounded by ``policy.probe_timeout``."""
        if self._state is BreakerState.CLOSED:
            return True
        if not self.available():
            return False
        self._state = BreakerState.HALF_OPEN
        self.probe_started = self.clock()
        return None

    def success(self) -> None:
        self._state = BreakerState.CLOSED
        self.failures = 0
        self.probe_started = None

    def failure(self) -> bool:
        """One more failure; True when it opened the circuit."""
        self.failures += 1
        if self._state is BreakerState.HALF_OPEN or self.failures >= self.policy.failures_to_open:
            self.trip()
            return True
        return False

    @property
    def probe_in(self) -> float:
        """Seconds until an open circuit lets a probe through (0: not open)."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.opened_at + self.policy.open_for - self.clock())

    def trip(self, open_for: float | None = None) -> None:
        """Open now (``open_for`` overrides the pause, e.g. a long cut-off)."""
        self._state = BreakerState.OPEN
        now = self.clock()
        self.opened_at = now if open_for is None else now + open_for - self.policy.open_for
        self.probe_started = None
