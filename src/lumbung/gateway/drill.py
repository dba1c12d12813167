"""``lumbung drill``: prove every route survives the loss of any one provider.

It starts the configured gateway in this process on 127.0.0.1, puts a ``FaultProxy`` in front of every
remote provider (and a ``FaultyBackend`` around the in-process engine), then for every route takes each
of its providers away in turn, in each way providers fail (cut off, hang, 500s, slow), and sends real
streamed requests through the route. A scenario passes when every request is answered completely.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import uvicorn

from lumbung.config import LOCAL_PROVIDER, ProviderConfig
from lumbung.errors import ConfigError
from lumbung.gateway.build import build_gateway
from lumbung.gateway.faults import FAULTS, Fault, FaultProxy, FaultyBackend
from lumbung.gateway.router import Gateway
from lumbung.settings import Settings


@dataclass
class Outcome:
    route: str
    provider: str  # "" for the baseline with every provider up
    fault: str
    sent: int
    answered: int
    latency_ms: float | None  # median of the answered requests

    @property
    def ok(self) -> bool:
        return self.sent > 0 and self.answered == self.sent


@dataclass
class Rig:
    gateway: Gateway
    proxies: dict[str, list[FaultProxy]]  # a vLLM provider: one per replica, faulted together
    local: FaultyBackend
    local_names: set[str]
    base_url: str

    def set_fault(self, provider: str, fault: Fault) -> None:
        if provider in self.local_names:
            self.local.fault = fault
        else:
            for proxy in self.proxies[provider]:
                proxy.fault = fault


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def route_providers(settings: Settings, route: str) -> list[str]:
    rc = next(r for r in settings.routes if r.name == route)
    return list(dict.fromkeys(t.provider for tier in rc.tiers for t in tier))


async def _one(client: httpx.AsyncClient, route: str, max_tokens: int) -> float | None:
    """Seconds to a complete streamed answer, or None when it failed in any way."""
    body = {"model": route, "messages": [{"role": "user", "content": "Drill: say hello."}], "stream": True}
    body["max_tokens"] = max_tokens
    start = time.perf_counter()
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body) as r:
            text = (await r.aread()).decode("utf-8", "replace")
    except httpx.HTTPError:
        return None
    if r.status_code != 200 or '"error"' in text or "data: [DONE]" not in text:
        return None
    return time.perf_counter() - start


async def traffic(
    rig: Rig, route: str, requests: int, max_tokens: int, wait: float
) -> tuple[int, float | None]:
    async with httpx.AsyncClient(base_url=rig.base_url, timeout=wait) as client:
        times = await asyncio.gather(*(_one(client, route, max_tokens) for _ in range(requests)))
    done = [t for t in times if t is not None]
    return len(done), (statistics.median(done) * 1000 if done else None)


async def run_drill(
    settings: Settings,
    *,
    requests: int = 4,
    max_tokens: int = 8,
    wait: float = 120.0,
    faults: tuple[Fault, ...] = FAULTS,
    report: Callable[[Outcome], None] = lambda _: None,
) -> list[Outcome]:
    from lumbung.engines.llamacpp.backend import LlamaCppBackend
    from lumbung.server import local_specs
    from lumbung.surfaces.http import SERVER_OPTIONS, create_app

    async def proxied(base_url: str) -> tuple[FaultProxy, str]:
        url = httpx.URL(base_url)
        proxy = await FaultProxy(f"{url.scheme}://{url.netloc.decode()}").start()
        return proxy, proxy.url + url.path.rstrip("/")

    for p in settings.providers:
        if p.launch is not None:
            raise ConfigError(
                f"provider {p.name!r}: the drill cannot stand between lumbung and the vLLM processes it "
                "launches; start them yourself and list them as `replicas` to drill them"
            )
    proxies: dict[str, list[FaultProxy]] = {}
    providers: list[ProviderConfig] = []
    for p in settings.providers:
        if p.kind == "vllm":  # the provider's loss is the loss of every replica at once
            pairs = [await proxied(url) for url in p.replica_urls]
            proxies[p.name] = [proxy for proxy, _ in pairs]
            p = p.model_copy(update={"replicas": [url for _, url in pairs], "base_url": None})
        elif p.kind != "local":
            proxy, url = await proxied(str(p.base_url))
            proxies[p.name] = [proxy]
            p = p.model_copy(update={"base_url": url})
        providers.append(p)
    # No redis_url: the drill's own cut-offs and open circuits are faked, never told to a fleet.
    drill_settings = settings.model_copy(
        update={"providers": providers, "api_keys": [], "admin_api_keys": [], "redis_url": None}
    )
    engine = LlamaCppBackend(local_specs(settings), request_timeout=settings.request_timeout)
    local = FaultyBackend(engine)
    gateway = build_gateway(drill_settings, local)
    local_names = {LOCAL_PROVIDER} | {p.name for p in providers if p.kind == "local"}
    port = _free_port()
    app = create_app(drill_settings, gateway)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **SERVER_OPTIONS)
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving
            raise RuntimeError("the drill's server did not start")
        await asyncio.sleep(0.02)
    rig = Rig(gateway, proxies, local, local_names, f"http://127.0.0.1:{port}")
    outcomes: list[Outcome] = []
    try:
        for rc in settings.routes:
            gateway.reset_health()
            await traffic(rig, rc.name, requests, max_tokens, wait)  # warm: connections, model loaded
            answered, ms = await traffic(rig, rc.name, requests, max_tokens, wait)
            outcomes.append(Outcome(rc.name, "", "none", requests, answered, ms))
            report(outcomes[-1])
            for provider in route_providers(settings, rc.name):
                for fault in faults:
                    gateway.reset_health()
                    rig.set_fault(provider, fault)
                    try:
                        answered, ms = await traffic(rig, rc.name, requests, max_tokens, wait)
                    finally:
                        rig.set_fault(provider, "pass")
                    outcomes.append(Outcome(rc.name, provider, fault, requests, answered, ms))
                    report(outcomes[-1])
    finally:
        server.should_exit = True
        await serving
        for proxy in (proxy for group in proxies.values() for proxy in group):
            await proxy.close()
        await asyncio.to_thread(engine.close)
    return outcomes
