"""The circuit breaker alone, on a fake clock."""

from __future__ import annotations

from lumbung.clock import FakeClock
from lumbung.gateway.breaker import Breaker, BreakerPolicy, BreakerState


def make() -> tuple[Breaker, FakeClock]:
    clock = FakeClock()
    return Breaker(BreakerPolicy(failures_to_open=3, open_for=10.0, probe_timeout=2.0), clock), clock


def test_opens_after_consecutive_failures_only() -> None:
    b, _ = make()
    b.failure()
    b.failure()
    b.success()  # a success in between resets the count
    b.failure()
    b.failure()
    assert b.state is BreakerState.CLOSED and b.acquire() is True
    b.failure()
    assert b.state is BreakerState.OPEN
    assert b.acquire() is False and not b.available()


def test_half_open_admits_exactly_one_probe() -> None:
    b, clock = make()
    for _ in range(3):
        b.failure()
    clock.advance(9.9)
    assert b.acquire() is False
    clock.advance(0.1)
    assert b.state is BreakerState.HALF_OPEN
    assert b.acquire() is None  # the probe
    assert b.acquire() is False  # no second request while the probe runs
    b.success()
    assert b.state is BreakerState.CLOSED and b.acquire() is True


def test_failed_probe_reopens_for_a_full_pause() -> None:
    b, clock = make()
    for _ in range(3):
        b.failure()
    clock.advance(10)
    assert b.acquire() is None
    b.failure()
    assert b.state is BreakerState.OPEN
    clock.advance(9)
    assert b.acquire() is False
    clock.advance(1)
    assert b.acquire() is None


def test_lost_probe_lets_another_go_after_its_timeout() -> None:
    b, clock = make()
    for _ in range(3):
        b.failure()
    clock.advance(10)
    assert b.acquire() is None
    clock.advance(1.9)
    assert b.acquire() is False
    clock.advance(0.1)
    assert b.acquire() is None


def test_trip_with_a_long_pause_is_a_cut_off() -> None:
    b, clock = make()
    b.trip(open_for=3600)
    clock.advance(3599)
    assert b.state is BreakerState.OPEN
    clock.advance(1)
    assert b.state is BreakerState.HALF_OPEN
