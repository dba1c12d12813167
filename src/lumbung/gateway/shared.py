"""Provider state shared by every lumbung instance that names the same ``redis_url``: a provider cut
off (a region block, a ban) or a circuit opened on one instance reaches the others at once, so a fleet
learns of a ban once, not once per instance.

Each mark is published on one Redis channel (pub/sub: the others hear it within milliseconds) and
kept as a key that expires when the mark does, so an instance that starts, or comes back after
losing Redis, reads the marks in force. Marks are relative ("cut off for 3,540 s more"), so the
instances' clocks need not agree; providers and targets are matched by name (instances run the same
config: a name another instance does not know is ignored). An instance ignores its own messages.

Only marks travel: a circuit closes on each instance by its own probe, and cool-downs after a 429
stay local (they are the provider's answer to that instance's traffic).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from lumbung.gateway.state import ProviderState, TargetState

log = logging.getLogger(__name__)

CHANNEL = "lumbung:marks"
PREFIX = "lumbung:marks:"
RECONNECT = 1.0  # seconds between tries to reach Redis again


class SharedState:
    """Marks in and out of Redis for one gateway's ``providers`` and ``targets`` (a ``Marks`` for
    each provider, and a watcher the gateway starts and closes)."""

    def __init__(
        self,
        url: str,
        providers: Iterable[ProviderState],
        targets: Iterable[TargetState],
        *,
        timeout: float = 2.0,
    ) -> None:
        self.redis = aioredis.Redis.from_url(url, socket_connect_timeout=timeout, health_check_interval=30)
        # The subscription's own connection, never retried behind our back: a lost subscription must
        # be noticed, to read the marks in force again once subscribed anew (``_listen``).
        self.listener = aioredis.Redis.from_url(
            url, socket_connect_timeout=timeout, health_check_interval=30, retry=Retry(NoBackoff(), 0)
        )
        self.providers = {p.name: p for p in providers}
        self.targets: dict[str, list[TargetState]] = {}
        for target in targets:
            self.targets.setdefault(target.key, []).append(target)
        self.origin = uuid.uuid4().hex
        self.learned = 0  # marks taken from other instances (tests, logs)
        self.listening = False  # subscribed and caught up: every mark from now on is heard
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._down = False
        for provider in self.providers.values():
            provider.marks = self

    # -- out -----------------------------------------------------------------------------------------

    def cut_off(self, provider: ProviderState) -> None:
        seconds = provider.cut_off_until - provider.clock()
        self._tell(
            {"kind": "cut_off", "name": provider.name, "reason": provider.cut_off_reason or ""}, seconds
        )

    def opened(self, target: TargetState) -> None:
        self._tell({"kind": "open", "name": target.key}, target.breaker.probe_in)

    def _tell(self, mark: dict[str, Any], seconds: float) -> None:
        if seconds <= 0:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: nothing serves requests, nobody to tell
        task = loop.create_task(self._publish({**mark, "seconds": seconds, "origin": self.origin}))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _publish(self, mark: dict[str, Any]) -> None:
        data = json.dumps(mark)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(
                    f"{PREFIX}{mark['kind']}:{mark['name']}", data, px=max(1, round(mark["seconds"] * 1000))
                )
                pipe.publish(CHANNEL, data)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._went_down(exc)

    # -- in ------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen())

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        for provider in self.providers.values():
            provider.marks = None
        await self.redis.aclose()
        await self.listener.aclose()

    async def _listen(self) -> None:
        """Subscribe, then read the marks in force (subscribed first: none is missed between), then
        take each message as it comes; again from the start whenever Redis goes away."""
        while True:
            try:
                async with self.listener.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    await self._catch_up()
                    self._came_back()
                    self.listening = True
                    async for message in pubsub.listen():
                        self.take(message["data"], None)
            except (RedisError, OSError) as exc:
                self._went_down(exc)
            self.listening = False
            await asyncio.sleep(RECONNECT)

    async def _catch_up(self) -> None:
        async for key in self.redis.scan_iter(match=PREFIX + "*", count=200):
            data, ttl = await self.redis.get(key), await self.redis.pttl(key)
            if data is not None and ttl > 0:
                self.take(data, ttl / 1000)

    def take(self, data: bytes | str, seconds: float | None) -> None:
        """One mark from Redis (``seconds``: what is left of it, when read from its key)."""
        try:
            mark = json.loads(data)
            kind, name, left = mark["kind"], str(mark["name"]), float(mark["seconds"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed provider mark from redis: %.200r", data)
            return
        if mark.get("origin") == self.origin:
            return
        left = left if seconds is None else seconds
        if kind == "cut_off" and name in self.providers:
            if self.providers[name].learn_cut_off(str(mark.get("reason", "")), left):
                self.learned += 1
                log.warning(
                    "provider %s is cut off (found by another instance): %s", name, mark.get("reason")
                )
        elif kind == "open":
            for target in self.targets.get(name, ()):
                if target.breaker.probe_in < left:
                    target.breaker.trip(open_for=left)
                    self.learned += 1
                    log.info("target %s: circuit opened (by another instance) for %.1f s", name, left)

    def _went_down(self, exc: BaseException) -> None:
        if not self._down:
            self._down = True
            log.error("redis is unreachable; provider marks are not shared until it is back: %s", exc)

    def _came_back(self) -> None:
        if self._down:
            self._down = False
            log.warning("redis is reachable again; provider marks are shared")
