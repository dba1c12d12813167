"""The in-process limiter on a fake clock: requests and tokens per minute as buckets that refill
continuously, concurrency slots, all three taken at once or not at all, tokens settled with the real
usage, and the x-ratelimit-* headers' view of a key."""

from __future__ import annotations

import pytest

from lumbung.accounts.keys import Caller
from lumbung.accounts.limits import (
    Limits,
    LocalLimiter,
    RateLimitExceeded,
    RateLimits,
    duration,
    estimate,
)
from lumbung.accounts.policy import KeyPolicy
from lumbung.clock import FakeClock


def test_requests_per_minute_burst_up_to_the_limit_then_refill_at_its_rate() -> None:
    clock = FakeClock()
    limiter = LocalLimiter(clock)
    limits = Limits(rpm=3)
    grants = [limiter.take("k", limits, 0) for _ in range(3)]
    assert [g.quota.remaining_requests for g in grants] == [2, 1, 0]
    with pytest.raises(RateLimitExceeded) as refused:
        limiter.take("k", limits, 0)
    assert refused.value.limit == "requests"
    assert refused.value.status == 429
    assert refused.value.retry_after == 20  # one request back every 60/3 seconds
    assert refused.value.quota.remaining_requests == 0
    clock.advance(19.9)
    with pytest.raises(RateLimitExceeded):
        limiter.take("k", limits, 0)
    clock.advance(0.1)
    assert limiter.take("k", limits, 0).quota.remaining_requests == 0
    clock.advance(600)  # a long pause fills the bucket, never past the limit
    assert limiter.take("k", limits, 0).quota.remaining_requests == 2


def test_each_key_has_its_own_buckets() -> None:
    limiter = LocalLimiter(FakeClock())
    limiter.take("a", Limits(rpm=1), 0)
    with pytest.raises(RateLimitExceeded):
        limiter.take("a", Limits(rpm=1), 0)
    assert limiter.take("b", Limits(rpm=1), 0).quota.remaining_requests == 0


def test_tokens_are_reserved_then_settled_with_the_real_usage() -> None:
    clock = FakeClock()
    limiter = LocalLimiter(clock)
    limits = Limits(tpm=1000)
    grant = limiter.take("k", limits, 600)
    assert grant.tokens == 600
    assert grant.quota.remaining_tokens == 400
    with pytest.raises(RateLimitExceeded) as refused:
        limiter.take("k", limits, 600)  # 400 left: this one would not fit
    assert refused.value.limit == "tokens"
    assert refused.value.retry_after == 12  # 200 tokens missing, 1000 a minute come back
    limiter.finish(grant, 100)  # it used far less than reserved: the rest comes back
    assert limiter.take("k", limits, 600).quota.remaining_tokens == 300


def test_more_tokens_used_than_reserved_is_a_debt_the_next_requests_wait_for() -> None:
    clock = FakeClock()
    limiter = LocalLimiter(clock)
    limits = Limits(tpm=600)
    grant = limiter.take("k", limits, 100)
    limiter.finish(grant, 1200)  # the bucket is now at -600
    with pytest.raises(RateLimitExceeded) as refused:
        limiter.take("k", limits, 10)
    assert refused.value.quota.remaining_tokens == 0
    assert refused.value.retry_after == 61  # back to 10 tokens: 610 tokens at 10 a second
    clock.advance(61)
    limiter.take("k", limits, 10)


def test_a_request_larger_than_the_whole_limit_waits_for_a_full_bucket_and_passes() -> None:
    clock = FakeClock()
    limiter = LocalLimiter(clock)
    limits = Limits(tpm=100)
    grant = limiter.take("k", limits, 5000)
    assert grant.tokens == 100
    limiter.finish(grant, 5000)
    with pytest.raises(RateLimitExceeded):
        limiter.take("k", limits, 5000)


def test_concurrency_slots_are_held_until_finished() -> None:
    limiter = LocalLimiter(FakeClock())
    limits = Limits(max_concurrent=2)
    first, _ = limiter.take("k", limits, 0), limiter.take("k", limits, 0)
    with pytest.raises(RateLimitExceeded) as refused:
        limiter.take("k", limits, 0)
    assert refused.value.limit == "concurrency"
    assert refused.value.retry_after == 1
    limiter.finish(first, 0)
    assert limiter.running("k") == 1
    limiter.take("k", limits, 0)
    assert limiter.running("k") == 2


def test_a_refused_request_takes_nothing_from_any_limit() -> None:
    limiter = LocalLimiter(FakeClock())
    limits = Limits(rpm=5, tpm=100, max_concurrent=1)
    limiter.take("k", limits, 50)
    for tokens in (10, 80):  # refused by concurrency, then by concurrency and tokens
        with pytest.raises(RateLimitExceeded):
            limiter.take("k", limits, tokens)
    assert limiter.running("k") == 1
    grant = limiter.take("other", limits, 0)
    assert grant.quota.remaining_requests == 4
    with pytest.raises(RateLimitExceeded) as refused:
        limiter.take("k", limits, 10)
    assert refused.value.quota.remaining_requests == 4  # the refusals counted no request
    assert refused.value.quota.remaining_tokens == 50


def test_the_longest_wait_names_the_refusal() -> None:
    limiter = LocalLimiter(FakeClock())
    limits = Limits(rpm=1, tpm=60)
    limiter.take("k", limits, 60)
    with pytest.raises(RateLimitExceeded) as refused:
        limiter.take("k", limits, 60)
    # Both are spent: a request back in 60 s, 60 tokens back in 60 s; 'requests' is named first.
    assert refused.value.limit == "requests"
    assert refused.value.type == "requests"
    assert "RPM" in refused.value.message


def test_the_quota_headers_read_as_openais() -> None:
    limiter = LocalLimiter(FakeClock())
    grant = limiter.take("k", Limits(rpm=60, tpm=6000), 300)
    headers = dict(grant.quota.headers())
    assert headers == {
        b"x-ratelimit-limit-requests": b"60",
        b"x-ratelimit-remaining-requests": b"59",
        b"x-ratelimit-reset-requests": b"1s",
        b"x-ratelimit-limit-tokens": b"6000",
        b"x-ratelimit-remaining-tokens": b"5700",
        b"x-ratelimit-reset-tokens": b"3s",
    }
    only_concurrency = limiter.take("c", Limits(max_concurrent=3), 0)
    assert only_concurrency.quota.headers() == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.02, "20ms"),
        (0.0201, "21ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (17.28, "17.28s"),
        (360, "6m0s"),
        (61.25, "1m1.25s"),
    ],
)
def test_durations_are_written_as_openai_writes_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_a_requests_tokens_are_estimated_from_its_body_and_its_answer_cap() -> None:
    body = b'{"model":"m","messages":[{"role":"user","content":"hello there"}],"max_tokens": 50}'
    assert estimate(body) == -(-len(body) // 4) + 50
    ollama = b'{"model":"m","prompt":"hi","options":{"num_predict":7}}'
    assert estimate(ollama) == -(-len(ollama) // 4) + 7
    assert estimate(b'{"model":"m","input":"hi"}') == 7
    assert estimate(b"") == 0


def test_virtual_keys_bring_their_limits_and_config_keys_get_the_defaults() -> None:
    limits = RateLimits(LocalLimiter(FakeClock()), Limits(rpm=10))
    virtual = Caller("d1", False, KeyPolicy(id="key_1", name="team", tpm=500))
    assert limits.of(virtual) == ("key:key_1", Limits(tpm=500))
    unlimited = Caller("d2", False, KeyPolicy(id="key_2", name="free"))
    assert limits.of(unlimited) is None
    assert limits.of(Caller("ab" * 32, False)) == ("cfg:" + "ab" * 16, Limits(rpm=10))
    assert limits.of(Caller(None, True)) == ("open", Limits(rpm=10))
    assert RateLimits(LocalLimiter(FakeClock())).of(Caller("d", False)) is None
