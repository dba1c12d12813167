"""lumbung's whole HTTP layer in process, over backends the test chooses: the same ``create_app`` and
``build_gateway`` as ``lumbung serve``, with a fake (or any) backend where the engine would be, and
providers that are fakes (tests/support/fake_backend.py) or real HTTP backends pointed at a fake
upstream (tests/support/fake_upstream.py). No model, no server process: the wire rules of every surface
run in milliseconds.

    async with in_process(tmp_path, providers={"a": FakeBackend("a")}, routes=[route("r", ["a"])]) as lb:
        response = await lb.client.post("/v1/chat/completions", json=...)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from lumbung.clock import TimerClock, monotonic
from lumbung.config import ProviderConfig
from lumbung.engines.base import Backend
from lumbung.gateway.build import build_gateway, default_backend
from lumbung.gateway.router import Gateway
from lumbung.settings import Settings
from lumbung.surfaces.http import create_app
from tests.support.asgi import StreamingTransport, lifespan
from tests.support.fake_backend import FakeBackend

MODEL = "fake-model"  # the fake local backend's model


@dataclass
class InProcess:
    app: Starlette
    gateway: Gateway
    settings: Settings
    client: httpx.AsyncClient
    local: FakeBackend
    providers: dict[str, Backend] = field(default_factory=dict)

    def fake(self, name: str) -> FakeBackend:
        backend = self.providers[name]
        assert isinstance(backend, FakeBackend)
        return backend

    def http_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """Another client on the same app (an SDK's ``http_client``); closed by the caller."""
        return httpx.AsyncClient(transport=StreamingTransport(self.app), **kwargs)


def route(name: str, *tiers: list[str], model: str = "m", **options: Any) -> dict[str, Any]:
    """A route config whose tiers name providers; each target is ``provider/model``."""
    return {"name": name, "tiers": [[f"{p}/{model}" for p in tier] for tier in tiers], **options}


def provider(name: str, base_url: str = "http://127.0.0.1:9/v1", **options: Any) -> dict[str, Any]:
    return {"name": name, "kind": "openai", "base_url": base_url, "jurisdiction": "ID", **options}


@dataclass
class Built:
    app: Starlette
    gateway: Gateway
    settings: Settings
    local: FakeBackend
    providers: dict[str, Backend]


def build(
    home: Path,
    *,
    local: FakeBackend | None = None,
    providers: Mapping[str, Backend | str] | None = None,
    provider_options: Mapping[str, dict[str, Any]] | None = None,
    routes: list[dict[str, Any]] | None = None,
    clock: TimerClock = monotonic,
    sink_delay: float = 0.0,
    **settings: Any,
) -> Built:
    """The app, not started (``in_process`` starts it; schemathesis starts it on its own).
    ``sink_delay``: as ``lumbung serve`` passes it (record.SINK_DELAY); 0: records close on the loop's
    next turn."""
    local = local or FakeBackend("local", [MODEL])
    providers = dict(providers or {})
    configs = [
        provider(
            name,
            base_url=value if isinstance(value, str) else "http://127.0.0.1:9/v1",
            **(provider_options or {}).get(name, {}),
        )
        for name, value in providers.items()
    ]
    config = Settings(
        home=home, serve_default_model=False, providers=configs, routes=routes or [], **settings
    )
    built: dict[str, Backend] = {}

    def make_backend(cfg: ProviderConfig, api_key: str | None) -> Backend:
        given = providers.get(cfg.name, str(cfg.base_url))  # a vLLM replica: its own base_url
        built[cfg.name] = default_backend(cfg, api_key) if isinstance(given, str) else given
        return built[cfg.name]

    gateway = build_gateway(config, local, make_backend=make_backend, environ={}, clock=clock)
    return Built(create_app(config, gateway, sink_delay=sink_delay), gateway, config, local, built)


@contextlib.asynccontextmanager
async def in_process(home: Path, **options: Any) -> AsyncIterator[InProcess]:
    """The app of ``build(home, **options)``, started, with a client; stopped after the block.
    ``providers``: name -> a backend, or a base URL for a real OpenAI HTTP backend."""
    it = build(home, **options)
    transport = StreamingTransport(it.app)
    async with (
        lifespan(it.app),
        httpx.AsyncClient(transport=transport, base_url="http://lumbung.test") as client,
    ):
        yield InProcess(it.app, it.gateway, it.settings, client, it.local, it.providers)
