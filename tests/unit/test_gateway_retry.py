"""Deadline, retry budget and backoff alone, on a fake clock."""

from __future__ import annotations

import random

from lumbung.clock import FakeClock
from lumbung.gateway.retry import Deadline, RetryBudget, backoff


def test_deadline_counts_down_over_all_attempts() -> None:
    clock = FakeClock()
    d = Deadline(5.0, clock)
    clock.advance(2)
    assert d.remaining() == 3.0 and not d.expired
    clock.advance(4)
    assert d.remaining() == 0.0 and d.expired


def test_budget_floor_allows_a_few_retries_with_no_traffic() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, min_per_second=0.5, window=4, clock=clock)
    assert [budget.try_retry() for _ in range(3)] == [True, True, False]


def test_budget_keeps_retries_a_fraction_of_requests() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.2, min_per_second=0.0, window=10, clock=clock)
    for _ in range(100):
        budget.record_request()
    granted = sum(budget.try_retry() for _ in range(50))
    assert granted == 20


def test_budget_window_slides() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.5, min_per_second=0.0, window=10, clock=clock)
    for _ in range(10):
        budget.record_request()
    assert sum(budget.try_retry() for _ in range(10)) == 5
    clock.advance(10)  # the old requests and retries fall out of the window
    assert not budget.try_retry()
    for _ in range(4):
        budget.record_request()
    assert sum(budget.try_retry() for _ in range(10)) == 2


def test_backoff_is_full_jitter_capped() -> None:
    rng = random.Random(7)
    pauses = [backoff(n, base=0.1, cap=1.0, rng=rng) for n in range(10) for _ in range(50)]
    assert all(0.0 <= p <= 1.0 for p in pauses)
    assert max(backoff(0, base=0.1, cap=1.0, rng=rng) for _ in range(100)) <= 0.1
    assert len({round(p, 6) for p in pauses}) > 400  # jittered, not fixed steps
