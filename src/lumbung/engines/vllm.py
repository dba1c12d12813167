"""A vLLM fleet: the replicas of one ``kind: vllm`` provider, each an OpenAI-compatible backend
(``http_openai.py``), watched by reading its Prometheus ``/metrics`` and ``/health`` every
``scrape_interval`` seconds on the gateway's clock.

What a replica says feeds the balancer (``gateway/balancer.py``): its queue and KV-cache pressure
(``ReplicaLoad``), and whether it takes new work at all. A replica takes none while its health check
fails (vLLM answers 503 while draining; a refused connection is a server restarting) or its engine
sleeps. Metrics older than ``stale_after`` are ignored, and a health answer as old is forgotten, so a
watcher that stopped never holds a replica out or in on old news.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lumbung.clock import TimerClock, sleep
from lumbung.config import FleetConfig, ProviderConfig
from lumbung.engines import http1
from lumbung.engines.http_common import TRANSPORT_ERRORS
from lumbung.engines.vllm_metrics import MetricsFormatError, ReplicaLoad, parse_metrics

log = logging.getLogger(__name__)


class Health(enum.Enum):
    UNKNOWN = "unknown"  # not checked yet, or the last answer is stale
    OK = "ok"
    DRAINING = "draining"  # the server answers, but not 200 (vLLM: 503 while draining or dead engine)
    DOWN = "down"  # no answer at all: stopped or restarting


def server_root(base_url: str) -> str:
    """``http://host:8000/v1`` -> ``http://host:8000``: vLLM serves /metrics and /health at its root."""
    url = urlsplit(base_url)
    path = url.path.rstrip("/")
    path = path.removesuffix("/v1")
    return urlunsplit((url.scheme, url.netloc, path, "", ""))


@dataclass(eq=False)
class Replica:
    """One vLLM server of a fleet, as the last reads of its metrics and health describe it."""

    name: str
    base_url: str
    config: FleetConfig
    http: http1.Pool
    load: ReplicaLoad | None = None
    health: Health = Health.UNKNOWN
    health_at: float = 0.0
    health_detail: str | None = None
    scrape_error: str | None = None
    scrapes: int = 0
    _logged: Health = field(default=Health.UNKNOWN, repr=False)

    @classmethod
    def of(cls, name: str, base_url: str, config: FleetConfig, headers: dict[str, str]) -> Replica:
        pool = http1.Pool(
            server_root(base_url),
            headers,
            limit=2,
            connect_timeout=config.scrape_timeout,
            read_timeout=config.scrape_timeout,
        )
        return cls(name, base_url, config, pool)

    # -- what the balancer reads -----------------------------------------------------------------------

    def fresh_load(self, now: float) -> ReplicaLoad | None:
        """The last metrics, unless older than ``stale_after``."""
        load = self.load
        if load is None or now - load.scraped_at > self.config.stale_after:
            return None
        return load

    def current_health(self, now: float) -> Health:
        if self.health is not Health.UNKNOWN and now - self.health_at > self.config.stale_after:
            return Health.UNKNOWN
        return self.health

    def accepting(self, now: float) -> bool:
        """Whether it may take new work: its health check passes (or is unknown) and it is awake."""
        if self.current_health(now) in (Health.DRAINING, Health.DOWN):
            return False
        load = self.fresh_load(now)
        return load is None or not load.sleeping

    def saturated(self, now: float) -> bool:
        """Full by its own metrics: a long waiting queue, or its KV cache nearly all in use."""
        load = self.fresh_load(now)
        if load is None:
            return False
        kv_full = load.kv_usage is not None and load.kv_usage >= self.config.kv_limit
        return load.waiting >= self.config.waiting_limit or kv_full

    def why_not(self, now: float) -> str:
        health = self.current_health(now)
        if health is Health.DRAINING:
            return f"replica draining ({self.health_detail})"
        if health is Health.DOWN:
            return f"replica down ({self.health_detail})"
        return "replica asleep"

    def snapshot(self, now: float) -> dict[str, Any]:
        load = self.fresh_load(now)
        return {
            "base_url": self.base_url,
            "health": self.current_health(now).value,
            "accepting": self.accepting(now),
            "saturated": self.saturated(now),
            "running": load.running if load else None,
            "waiting": load.waiting if load else None,
            "kv_cache_usage": load.kv_usage if load else None,
            "prefix_cache_hit_rate": load.prefix_hit_rate if load else None,
            "sleeping": load.sleeping if load else None,
            "metrics_age_s": round(now - self.load.scraped_at, 1) if self.load else None,
            "scrape_error": self.scrape_error,
        }

    # -- reading the server ------------------------------------------------------------------------------

    async def _get(self, path: str) -> tuple[int, bytes]:
        async with asyncio.timeout(self.config.scrape_timeout):
            async with self.http.get(path) as response:
                return response.status, await response.read()

    async def check_health(self, now: float) -> None:
        try:
            status, _ = await self._get(self.config.health_path)
        except TRANSPORT_ERRORS as exc:
            self.health, self.health_detail = Health.DOWN, str(exc) or type(exc).__name__
        else:
            ok = status == 200
            self.health = Health.OK if ok else Health.DRAINING
            self.health_detail = None if ok else f"{self.config.health_path} answered {status}"
        self.health_at = now
        if self.health is not self._logged:
            level = logging.INFO if self.health is Health.OK else logging.WARNING
            log.log(level, "vllm replica %s (%s): %s", self.name, self.base_url, self.health.value)
            self._logged = self.health

    async def read_metrics(self, now: float) -> None:
        try:
            status, body = await self._get(self.config.metrics_path)
            if status != 200:
                raise MetricsFormatError(f"{self.config.metrics_path} answered {status}")
            self.load = parse_metrics(body.decode("utf-8", "replace"), now, self.load)
            self.scrape_error = None
        except (*TRANSPORT_ERRORS, MetricsFormatError) as exc:
            # The last good load stays until it is stale; then balancing falls back to in-flight counts.
            if self.scrape_error is None:
                log.info("vllm replica %s: metrics unreadable: %s", self.name, exc)
            self.scrape_error = str(exc)[:300] or type(exc).__name__

    async def scrape(self, now: float) -> None:
        await asyncio.gather(self.check_health(now), self.read_metrics(now))
        self.scrapes += 1


class Fleet:
    """A vLLM provider's replicas and the task that keeps reading them."""

    def __init__(self, name: str, config: FleetConfig, replicas: list[Replica], clock: TimerClock) -> None:
        self.name = name
        self.config = config
        self.replicas = replicas
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self.passes = 0  # reads of every replica the watch loop has finished

    @classmethod
    def of(cls, config: ProviderConfig, api_key: str | None, clock: TimerClock) -> Fleet:
        headers = dict(config.headers)
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        replicas = [
            Replica.of(replica_name(config.name, i), url, config.fleet, headers)
            for i, url in enumerate(config.replica_urls)
        ]
        return cls(config.name, config.fleet, replicas, clock)

    async def scrape_once(self) -> None:
        """Read every replica once, at the same time."""
        now = self.clock()
        await asyncio.gather(*(r.scrape(now) for r in self.replicas))

    async def _run(self) -> None:
        while True:
            try:
                await self.scrape_once()
            except Exception:  # a bug in reading must not end the watch
                log.exception("vllm fleet %s: reading replicas failed", self.name)
            self.passes += 1
            await sleep(self.clock, self.config.scrape_interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"vllm-fleet-{self.name}")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for replica in self.replicas:
            await replica.http.close()


def replica_name(provider: str, index: int) -> str:
    """The provider name one replica's targets go by: ``gpu[0]``, ``gpu[1]``."""
    return f"{provider}[{index}]"
