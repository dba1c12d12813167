"""The operator's view of the gateway (``GET /admin/providers``, ``lumbung status``), as plain data."""

from __future__ import annotations

from typing import Any

from lumbung.gateway.state import ProviderState, Route


def _health(cut_off: bool, rows: list[dict[str, Any]]) -> str:
    """cut_off; a vLLM replica taking no work: its own word (draining, down, asleep); down (every
    target's circuit open); degraded (some); ok."""
    if cut_off:
        return "cut_off"
    replica = rows[0].get("replica") if rows else None
    if replica is not None and not replica["accepting"]:
        return "asleep" if replica["health"] in ("ok", "unknown") else str(replica["health"])
    tripped = [r for r in rows if r["breaker"] != "closed"]
    if rows and len(tripped) == len(rows):
        return "down"
    return "degraded" if tripped else "ok"


def snapshot(providers: list[ProviderState], routes: list[Route], egress: list[str] | None) -> dict[str, Any]:
    targets: dict[str, list[dict[str, Any]]] = {}
    for route in routes:
        for member in route.members():
            rows = targets.setdefault(member.state.provider.name, [])
            if all(r["target"] != member.key for r in rows):
                rows.append(member.state.snapshot())
    out = []
    for p in providers:
        rows = targets.get(p.name, [])
        cut = p.is_cut_off
        out.append(
            {
                "name": p.name,
                "kind": p.kind,
                "jurisdiction": p.jurisdiction,
                "base_url": p.base_url,
                "health": _health(cut, rows),
                "cut_off": {"reason": p.cut_off_reason, "for_s": round(p.cut_off_until - p.clock(), 1)}
                if cut
                else None,
                "cut_offs": p.cut_offs,
                "inflight": sum(r["inflight"] for r in rows),
                "targets": rows,
            }
        )
    shown = [
        {
            "name": r.name,
            "aliases": r.aliases,
            "tiers": [[{"target": m.key, "weight": m.weight} for m in tier] for tier in r.tiers],
            "prefix_affinity": r.prefix_affinity,
            "passthrough": r.passthrough,
            "egress": r.egress or egress,
        }
        for r in routes
    ]
    return {"providers": out, "routes": shown, "egress": egress}
