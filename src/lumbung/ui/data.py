"""What the dashboard shows, as plain data read from the objects that already keep it: the gateway's
status and failover timeline, the engines' model stats, the store's manifests. Nothing is counted
twice; every function here is a read."""

from __future__ import annotations

import time
from typing import Any

from lumbung.engines.base import Measured
from lumbung.gateway.router import Gateway
from lumbung.store.manifest import Manifest


def _ready_targets(gateway: Gateway, name: str) -> list[str]:
    """Where the route's next request may go now: the ready targets of its first tier that has any."""
    route = gateway.resolve(name)
    for tier in route.tiers:
        ready = [m.key for m in tier if m.state.blocked_for() == 0.0]
        if ready:
            return ready
    return []


def overview(gateway: Gateway) -> dict[str, Any]:
    """Providers (health, breaker, cut-off mark and reason, in flight), routes (tiers, the target that
    answered last, where the next request goes) and the failover timeline."""
    body = gateway.status()
    for route in body["routes"]:
        last = gateway.timeline.serving.get(route["name"])
        route["serving"] = None if last is None else {"target": last[0], "at": round(last[1], 3)}
        route["ready"] = _ready_targets(gateway, route["name"])
    body["timeline"] = gateway.timeline.snapshot()
    body["failovers"] = [
        {"from": source, "to": dest, "count": count}
        for (source, dest), count in sorted(gateway.failovers.items())
    ]
    body["local"] = [{"id": m.id, "loaded": m.loaded} for m in gateway.models() if "tiers" not in m.details]
    body["now"] = round(time.time(), 3)
    return body


def stored(manifest: Manifest) -> dict[str, Any]:
    source = manifest.source
    weights = manifest.weights
    return {
        "name": manifest.name,
        "reference": manifest.reference,
        "source": source.kind,
        "repo": source.repo or source.path,
        "revision": source.commit or source.revision,
        "license": manifest.license,
        "format": manifest.format,
        "size_bytes": manifest.size,
        "sha256": weights[0].sha256 if len(weights) == 1 else manifest.digest,
        "files": len(manifest.files),
        "pulled_at": manifest.pulled_at,
        # A pull checks every file against the hub's hash as it arrives: verified then.
        "verified_at": manifest.verified_at or manifest.pulled_at,
        "quantization": manifest.gguf.quantization if manifest.gguf else None,
        "removable": source.kind != "embedded",
    }


def models(gateway: Gateway, manifests: list[Manifest]) -> dict[str, Any]:
    """The store's models (``manifests``: read off the event loop, they are files), and the local
    models with what their engines say now (read on the loop, which owns that state)."""
    generated = {
        s.model: s.generated_tokens
        for backend in gateway.backends
        if isinstance(backend, Measured)
        for s in backend.model_stats()
        if s.loaded
    }
    local = []
    for info in gateway.models():
        if "tiers" in info.details:
            continue  # a route, not a model
        d = info.details
        cache = d.get("prefix_cache") or {}
        local.append(
            {
                "id": info.id,
                "loaded": info.loaded,
                "memory_bytes": d.get("memory_bytes"),
                "running": d.get("active_requests"),
                "queued": d.get("queued_requests"),
                "parallel": d.get("parallel"),
                "context_length": info.context_length,
                "prefix_cache_hits": cache.get("hits"),
                "prefix_cache_misses": cache.get("misses"),
                "generated_tokens": generated.get(info.id),
                "expires_at": d.get("expires_at"),
                "keep_alive": d.get("keep_alive"),
            }
        )
    return {"store": [stored(m) for m in manifests], "local": local, "now": round(time.time(), 3)}
