"""/health answers 503 while the default model loads and 200 after, through the real ASGI app."""

from __future__ import annotations

import threading
import time

from starlette.testclient import TestClient

from lumbung.gateway.router import Gateway
from lumbung.settings import Settings
from lumbung.surfaces.http import create_app


def test_health_is_503_until_preload_finishes() -> None:
    release = threading.Event()

    async def preload() -> None:
        import asyncio

        await asyncio.to_thread(release.wait, 10)

    app = create_app(Settings(), Gateway([]), preload=preload)
    with TestClient(app) as client:
        first = client.get("/health")
        assert first.status_code == 503 and first.json() == {"status": "loading"}
        release.set()
        deadline = time.monotonic() + 5
        while client.get("/health").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.get("/health").json() == {"status": "ok"}


def test_health_reports_a_failed_load() -> None:
    async def preload() -> None:
        raise RuntimeError("disk on fire")

    with TestClient(create_app(Settings(), Gateway([]), preload=preload)) as client:
        deadline = time.monotonic() + 5
        while client.get("/health").json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.01)
        body = client.get("/health").json()
        assert body == {"status": "error", "error": "disk on fire"}
