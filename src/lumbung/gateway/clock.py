"""Time as a parameter: the gateway's primitives take a ``Clock`` so tests drive them with a fake one."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def __call__(self) -> float:
        """Seconds on a monotonic scale."""
        ...


def monotonic() -> float:
    return time.monotonic()


class FakeClock:
    """A clock that moves only when told (tests)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
