"""Retry primitives, each small and driven by a clock: a deadline over all attempts, a retry budget
that keeps retries a bounded fraction of traffic, and full-jitter exponential backoff."""

from __future__ import annotations

import random
from collections import deque

from lumbung.clock import Clock, monotonic


class Deadline:
    """One deadline for a request, covering every attempt."""

    def __init__(self, seconds: float, clock: Clock = monotonic) -> None:
        self.clock = clock
        self.at = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self.at - self.clock())

    @property
    def expired(self) -> bool:
        return self.clock() >= self.at


class RetryBudget:
    """Retries allowed in a sliding window: ``ratio`` of the requests seen plus ``min_per_second``.

    Counts live in one-second buckets, so memory stays constant at any rate.
    """

    def __init__(
        self, ratio: float = 0.2, min_per_second: float = 10.0, window: float = 10.0, clock: Clock = monotonic
    ) -> None:
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.window = int(window)
        self.clock = clock
        self._buckets: deque[list[int]] = deque()  # [second, requests, retries]

    def _bucket(self) -> list[int]:
        now = int(self.clock())
        while self._buckets and self._buckets[0][0] <= now - self.window:
            self._buckets.popleft()
        if not self._buckets or self._buckets[-1][0] != now:
            self._buckets.append([now, 0, 0])
        return self._buckets[-1]

    def record_request(self) -> None:
        self._bucket()[1] += 1

    def try_retry(self) -> bool:
        """Spend one retry if the budget allows."""
        bucket = self._bucket()
        requests = sum(b[1] for b in self._buckets)
        retries = sum(b[2] for b in self._buckets)
        if retries + 1 > self.ratio * requests + self.min_per_second * self.window:
            return False
        bucket[2] += 1
        return True


def backoff(attempt: int, base: float = 0.05, cap: float = 2.0, rng: random.Random | None = None) -> float:
    """Full jitter: a uniform pause in [0, min(cap, base * 2**attempt)]."""
    return (rng or random).uniform(0.0, min(cap, base * 2.0**attempt))
