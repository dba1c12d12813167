"""The rate limits' buckets in Redis, shared by every lumbung instance that names the same
``redis_url``: the same buckets as ``LocalLimiter`` (accounts/limits.py), each check and each
settlement one Lua script, so it is atomic across processes, on Redis's own clock (``TIME``), so the
instances' clocks need not agree.

Per key: a hash for each bucket (level, when) that expires once it would be full again (a missing
bucket is a full one), and a sorted set of the requests holding a concurrency slot, scored by when
their lease ends (``lease``: a request killed with its process, ``kill -9``, frees its slot then).

Redis unreachable: requests pass unlimited (the limits protect the models, they do not gate the
service), and it is logged once each time Redis goes away and comes back.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from lumbung.accounts.limits import (
    CONCURRENCY_RETRY,
    Grant,
    Limits,
    quota_of,
    refusal,
    reserve_of,
)

log = logging.getLogger(__name__)

PREFIX = "lumbung:limits:"
_COMMON = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function level(key, cap)
  local v = redis.call('HMGET', key, 'level', 'at')
  if not v[1] then return cap end
  local l = tonumber(v[1]) + (now - tonumber(v[2])) * cap / 60
  if l > cap then return cap end
  return l
end
local function store(key, l, cap)
  redis.call('HSET', key, 'level', tostring(l), 'at', tostring(now))
  redis.call('PEXPIRE', key, math.ceil((cap - l) * 60000 / cap) + 1000)
end
"""
# KEYS: requests bucket, tokens bucket, concurrency set. ARGV: rpm, tpm, max_concurrent (0: none),
# tokens to reserve, this request's lease id, lease seconds.
# Returns the limit that refused (empty: let through), the wait, the buckets' levels.
ACQUIRE = (
    _COMMON
    + """
local rpm, tpm, maxc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cost, lease = tonumber(ARGV[4]), tonumber(ARGV[6])
local which, wait = '', 0
local lr, lt = 0, 0
if rpm > 0 then
  lr = level(KEYS[1], rpm)
  if lr < 1 then which, wait = 'requests', (1 - lr) * 60 / rpm end
end
if tpm > 0 then
  lt = level(KEYS[2], tpm)
  local need = math.max(cost, 1)
  if cost > 0 and lt < need then
    local w = (need - lt) * 60 / tpm
    if which == '' or w > wait then which, wait = 'tokens', w end
  end
end
if maxc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= maxc then
    local w = tonumber(ARGV[7])
    if which == '' or w > wait then which, wait = 'concurrency', w end
  end
end
if which == '' then
  if rpm > 0 then lr = lr - 1; store(KEYS[1], lr, rpm) end
  if tpm > 0 then lt = lt - cost; store(KEYS[2], lt, tpm) end
  if maxc > 0 then
    redis.call('ZADD', KEYS[3], now + lease, ARGV[5])
    redis.call('PEXPIRE', KEYS[3], math.ceil(lease * 1000) + 1000)
  end
end
return {which, tostring(wait), tostring(lr), tostring(lt)}
"""
)
# KEYS: tokens bucket, concurrency set. ARGV: tpm (0: none), tokens to give back (negative: to take),
# the lease to end (empty: none).
FINISH = (
    _COMMON
    + """
if ARGV[3] ~= '' then redis.call('ZREM', KEYS[2], ARGV[3]) end
local tpm, delta = tonumber(ARGV[1]), tonumber(ARGV[2])
if tpm > 0 and delta ~= 0 then
  local l = level(KEYS[1], tpm) + delta
  if l > tpm then l = tpm end
  store(KEYS[1], l, tpm)
end
return 1
"""
)


def keys_of(key: str) -> list[str]:
    """The Redis keys of one limited key (one hash slot: a Redis Cluster runs the scripts too)."""
    base = f"{PREFIX}{{{key}}}:"
    return [base + "requests", base + "tokens", base + "running"]


class RedisLimiter:
    def __init__(self, url: str, *, lease: float = 660.0, timeout: float = 1.0) -> None:
        self.redis = aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.lease = lease
        self._acquire = self.redis.register_script(ACQUIRE)
        self._finish = self.redis.register_script(FINISH)
        self._ids = (f"{uuid.uuid4().hex[:12]}:{n}" for n in itertools.count())
        self._pending: set[asyncio.Task[None]] = set()
        self._down = False

    async def acquire(self, key: str, limits: Limits, tokens: int) -> Grant | None:
        cost = reserve_of(tokens, limits.tpm) if limits.tpm is not None else 0
        lease = next(self._ids) if limits.max_concurrent is not None else ""
        args: list[str | int | float] = [
            *(limits.rpm or 0, limits.tpm or 0, limits.max_concurrent or 0, cost),
            *(lease, self.lease, CONCURRENCY_RETRY),
        ]
        try:
            which, wait, lr, lt = await self._acquire(keys=keys_of(key), args=args)
        except (RedisError, OSError) as exc:
            self._went_down(exc)
            return None
        self._came_back()
        quota = quota_of(limits, float(lr), float(lt))
        if which:
            raise refusal(which.decode(), limits, float(wait), quota)
        return Grant(key, limits, cost, quota, lease)

    def finish(self, grant: Grant, used: int) -> None:
        tpm = grant.limits.tpm
        delta = grant.tokens - used if tpm is not None else 0
        if not grant.lease and not delta:
            return
        # Its own task: the request's may be cancelled (the client left), the slot must still go back.
        task = asyncio.get_running_loop().create_task(self._settle(grant, tpm or 0, delta))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _settle(self, grant: Grant, tpm: int, delta: int) -> None:
        _, tokens, running = keys_of(grant.key)
        try:
            await self._finish(keys=[tokens, running], args=[tpm, delta, grant.lease])
        except (RedisError, OSError) as exc:
            self._went_down(exc)  # the lease ends the slot on its own

    async def drain(self) -> None:
        """Wait for the settlements under way (tests; shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        await self.redis.aclose()

    def _went_down(self, exc: BaseException) -> None:
        if not self._down:
            self._down = True
            log.error("redis is unreachable; rate limits are not enforced until it is back: %s", exc)

    def _came_back(self) -> None:
        if self._down:
            self._down = False
            log.warning("redis is reachable again; rate limits are enforced")
