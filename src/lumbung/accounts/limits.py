"""Rate limits per key: requests per minute, tokens per minute, concurrent requests.

Each per-minute limit is a bucket that holds up to ``limit`` and refills at ``limit`` per minute (what
OpenAI describes: the limit replenishes continuously, so a key may burst up to it and then goes at the
refill rate). A request takes 1 from the requests bucket and its estimated tokens from the tokens
bucket, and holds one concurrency slot, all three at once or none (``acquire``); once the request is
over, ``finish`` settles the tokens with what it really used (the bucket may go below zero: the next
requests wait for the debt) and gives the slot back.

``LocalLimiter`` keeps the buckets in this process (one instance); ``RedisLimiter``
(accounts/limits_redis.py) keeps them in Redis, so instances behind one load balancer share them.
The request boundary (surfaces/boundary.py) calls both the same way.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Protocol

from lumbung.accounts.keys import Caller
from lumbung.accounts.policy import KeyPolicy
from lumbung.clock import Clock, monotonic
from lumbung.errors import RateLimited

MINUTE = 60.0
CONCURRENCY_RETRY = 1.0  # seconds a client is told to wait for a concurrency slot (no schedule known)
BYTES_PER_TOKEN = 4  # a prompt's tokens, guessed from its body before anything parsed it
# The answer's cap in each API's words (OpenAI chat / legacy, Responses, Anthropic, Ollama's options).
_CAP = re.compile(rb'"(?:max_tokens|max_completion_tokens|max_output_tokens|num_predict)"\s*:\s*(\d{1,9})')


@dataclass(frozen=True, slots=True)
class Limits:
    """What one key may do; None: no such limit."""

    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None

    @classmethod
    def of(cls, policy: KeyPolicy) -> Limits | None:
        found = cls(policy.rpm, policy.tpm, policy.max_concurrent)
        return found if found.any else None

    @property
    def any(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.max_concurrent is not None


@dataclass(frozen=True, slots=True)
class Quota:
    """Where a key stands after a request was let through or refused: OpenAI's ``x-ratelimit-*``
    headers (``reset``: seconds until its bucket is full again)."""

    limit_requests: int | None = None
    remaining_requests: int = 0
    reset_requests: float = 0.0
    limit_tokens: int | None = None
    remaining_tokens: int = 0
    reset_tokens: float = 0.0

    def headers(self) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        for kind, limit, remaining, reset in (
            ("requests", self.limit_requests, self.remaining_requests, self.reset_requests),
            ("tokens", self.limit_tokens, self.remaining_tokens, self.reset_tokens),
        ):
            if limit is not None:
                out += [
                    (b"x-ratelimit-limit-" + kind.encode(), str(limit).encode()),
                    (b"x-ratelimit-remaining-" + kind.encode(), str(max(0, remaining)).encode()),
                    (b"x-ratelimit-reset-" + kind.encode(), duration(reset).encode()),
                ]
        return out


def duration(seconds: float) -> str:
    """A wait as OpenAI writes it in ``x-ratelimit-reset-*``: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    minutes, rest = divmod(math.ceil(seconds * 1000) / 1000, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".")
    return f"{int(minutes)}m{text}s" if minutes else f"{text}s"


class RateLimitExceeded(RateLimited):
    """429 for a key past one of its limits; carries where the key stands (the headers) and which
    limit it hit (``requests``, ``tokens`` or ``concurrency``: counted in /metrics)."""

    def __init__(self, limit: str, message: str, retry_after: float, quota: Quota) -> None:
        super().__init__(message, retry_after=max(1.0, math.ceil(retry_after)))
        self.limit = limit
        self.quota = quota
        self.type = "tokens" if limit == "tokens" else "requests"  # OpenAI's error type for each


def refusal(limit: str, limits: Limits, wait: float, quota: Quota) -> RateLimitExceeded:
    if limit == "concurrency":
        text = f"Too many concurrent requests for this key: limit {limits.max_concurrent}."
    elif limit == "tokens":
        text = f"Rate limit reached on tokens per minute (TPM): limit {limits.tpm}."
    else:
        text = f"Rate limit reached on requests per minute (RPM): limit {limits.rpm}."
    return RateLimitExceeded(limit, f"{text} Please try again in {duration(wait)}.", wait, quota)


@dataclass(slots=True)
class Grant:
    """A request let through: what ``finish`` gives back. ``lease`` names its concurrency slot."""

    key: str
    limits: Limits
    tokens: int  # reserved from the tokens bucket
    quota: Quota
    lease: str = ""


class Limiter(Protocol):
    async def acquire(self, key: str, limits: Limits, tokens: int) -> Grant | None:
        """Let one request of ``key`` through, reserving ``tokens``; raise ``RateLimitExceeded``
        past a limit. None: the limits could not be checked (a store that is down lets it pass)."""
        ...

    def finish(self, grant: Grant, used: int) -> None:
        """The request is over (however it ended) and used ``used`` tokens: settle, free its slot.
        Never raises, never waits (it may run in a cancelled task)."""
        ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _Bucket:
    level: float
    at: float

    def refill(self, capacity: int, now: float) -> float:
        self.level = min(float(capacity), self.level + (now - self.at) * capacity / MINUTE)
        self.at = now
        return self.level


def estimate(body: bytes) -> int:
    """Tokens a request may use, before anything parsed it: its body's size as prompt tokens (an
    overestimate: JSON's punctuation and keys count too) plus the largest answer it asks for, if it
    names a cap (``max_tokens``, ``max_completion_tokens``, ``max_output_tokens``, ``num_predict``).
    The tokens reserved are settled with the real usage once the request is over."""
    if not body:
        return 0
    caps = [int(m) for m in _CAP.findall(body)]
    return math.ceil(len(body) / BYTES_PER_TOKEN) + (max(caps) if caps else 0)


def reserve_of(tokens: int, tpm: int) -> int:
    """A request larger than the whole per-minute limit waits for a full bucket rather than never
    passing; it pays the rest after (settled with its real usage)."""
    return min(tokens, tpm)


def quota_of(limits: Limits, requests: float | None, tokens: float | None) -> Quota:
    """The headers' view of a key whose buckets stand at these levels."""
    rpm, tpm = limits.rpm, limits.tpm
    quota = Quota()
    if rpm is not None and requests is not None:
        quota = Quota(rpm, max(0, math.floor(requests)), reset_of(requests, rpm))
    if tpm is not None and tokens is not None:
        quota = Quota(
            quota.limit_requests,
            quota.remaining_requests,
            quota.reset_requests,
            tpm,
            max(0, math.floor(tokens)),
            reset_of(tokens, tpm),
        )
    return quota


def reset_of(level: float, capacity: int) -> float:
    """Seconds until a bucket at ``level`` is full again."""
    return max(0.0, (capacity - level) * MINUTE / capacity)


def wait_for(level: float, need: float, capacity: int) -> float:
    return max(0.0, (need - level) * MINUTE / capacity)


class LocalLimiter:
    """The buckets of one process. Everything happens between two awaits, so it is atomic for the
    event loop's tasks; ``clock`` is injected (tests step it)."""

    MAX_KEYS = 100_000  # idle full buckets are forgotten past this many keys

    def __init__(self, clock: Clock = monotonic) -> None:
        self.clock = clock
        self._requests: dict[str, _Bucket] = {}
        self._tokens: dict[str, _Bucket] = {}
        self._running: dict[str, int] = {}

    async def acquire(self, key: str, limits: Limits, tokens: int) -> Grant:
        return self.take(key, limits, tokens)

    def take(self, key: str, limits: Limits, tokens: int) -> Grant:
        now = self.clock()
        requests = tokens_bucket = None
        waits: list[tuple[str, float]] = []
        if limits.rpm is not None:
            requests = self._bucket(self._requests, key, limits.rpm, now)
            if requests.level < 1:
                waits.append(("requests", wait_for(requests.level, 1, limits.rpm)))
        cost = 0
        if limits.tpm is not None:
            tokens_bucket = self._bucket(self._tokens, key, limits.tpm, now)
            cost = reserve_of(tokens, limits.tpm)
            if cost > 0 and tokens_bucket.level < max(cost, 1):
                waits.append(("tokens", wait_for(tokens_bucket.level, max(cost, 1), limits.tpm)))
        running = self._running.get(key, 0)
        if limits.max_concurrent is not None and running >= limits.max_concurrent:
            waits.append(("concurrency", CONCURRENCY_RETRY))
        if waits:
            limit, wait = max(waits, key=lambda w: w[1])
            raise refusal(limit, limits, wait, self._quota(limits, requests, tokens_bucket))
        if requests is not None:
            requests.level -= 1
        if tokens_bucket is not None:
            tokens_bucket.level -= cost
        if limits.max_concurrent is not None:
            self._running[key] = running + 1
        if len(self._requests) + len(self._tokens) > self.MAX_KEYS:
            self._forget(now)
        return Grant(key, limits, cost, self._quota(limits, requests, tokens_bucket))

    def finish(self, grant: Grant, used: int) -> None:
        limits = grant.limits
        if limits.tpm is not None and used != grant.tokens:
            bucket = self._bucket(self._tokens, grant.key, limits.tpm, self.clock())
            bucket.level = min(float(limits.tpm), bucket.level + grant.tokens - used)
        if limits.max_concurrent is not None:
            running = self._running.get(grant.key, 0) - 1
            if running > 0:
                self._running[grant.key] = running
            else:
                self._running.pop(grant.key, None)

    async def aclose(self) -> None:
        return None

    def running(self, key: str) -> int:
        """Requests of ``key`` holding a concurrency slot now."""
        return self._running.get(key, 0)

    @staticmethod
    def _quota(limits: Limits, requests: _Bucket | None, tokens: _Bucket | None) -> Quota:
        return quota_of(limits, requests.level if requests else None, tokens.level if tokens else None)

    @staticmethod
    def _bucket(table: dict[str, _Bucket], key: str, capacity: int, now: float) -> _Bucket:
        bucket = table.get(key)
        if bucket is None:
            bucket = table[key] = _Bucket(float(capacity), now)
        else:
            bucket.refill(capacity, now)
        return bucket

    def _forget(self, now: float) -> None:
        """Drop buckets untouched for a minute or more (full again, unless in debt: kept)."""
        for table in (self._requests, self._tokens):
            for key in [k for k, b in table.items() if now - b.at >= MINUTE and b.level >= 0]:
                del table[key]


class RateLimits:
    """The request boundary's view of limits: whose limits apply to a caller, and the limiter that
    counts them. Virtual keys bring theirs on ``Caller.policy``; config-file keys get ``defaults``
    (``key_limits``), each key its own count."""

    def __init__(self, limiter: Limiter, defaults: Limits | None = None) -> None:
        self.limiter = limiter
        self.defaults = defaults if defaults is not None and defaults.any else None

    def of(self, caller: Caller) -> tuple[str, Limits] | None:
        """The key to count under and its limits; None: none apply (the common case: no work)."""
        policy = caller.policy
        if policy is not None:
            limits = Limits.of(policy)
            return None if limits is None else (f"key:{policy.id}", limits)
        if self.defaults is None:
            return None
        return (f"cfg:{caller.owner[:32]}" if caller.owner else "open", self.defaults)
