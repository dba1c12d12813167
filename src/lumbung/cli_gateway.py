"""Gateway commands: ``lumbung status`` (providers as a running server sees them) and ``lumbung drill``
(take each provider away in turn and show which routes still answer)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lumbung.cli_client import get_json
from lumbung.errors import LumbungError
from lumbung.settings import load_settings

_CONFIG = click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML config file (default: $LUMBUNG_CONFIG).",
)


def _console() -> Console:
    """Tables printed into a pipe or a file keep whole lines (rich would wrap them at 80 columns)."""
    return Console(width=None if sys.stdout.isatty() else 200)


def target_cell(target: dict[str, Any]) -> str:
    """``gpu[0]/m (closed)``; a vLLM replica adds what it last reported."""
    out = f"{target['target']} ({target['breaker']})"
    replica = target.get("replica")
    if replica is None:
        return out
    said = [replica["health"]]
    if replica["running"] is not None:
        said.append(f"running {replica['running']}, waiting {replica['waiting']}")
        if replica["kv_cache_usage"] is not None:
            said.append(f"KV {replica['kv_cache_usage']:.0%}")
        if replica["prefix_cache_hit_rate"] is not None:
            said.append(f"prefix hits {replica['prefix_cache_hit_rate']:.0%}")
    else:
        said.append("no fresh metrics")
    if replica["saturated"]:
        said.append("full")
    return f"{out} [{'; '.join(said)}]"


@click.command()
@_CONFIG
@click.option("--url", default=None, help="Server to ask (default: the configured host and port).")
@click.option(
    "--api-key",
    envvar="LUMBUNG_API_KEY",
    default=None,
    help="An operator key (admin_api_keys) when the server has keys (default: $LUMBUNG_API_KEY).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON of GET /admin/providers.")
@click.option("--probe", is_flag=True, help="Also ask each provider now whether it answers.")
def status(config: Path | None, url: str | None, api_key: str | None, as_json: bool, probe: bool) -> None:
    """Show each provider's health, breaker states, cut-off marks and in-flight requests."""
    params = {"probe": "1"} if probe else None
    url, body = get_json(config, url, api_key, "/admin/providers", params=params, timeout=30)
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    table = Table(title=f"providers at {url}")
    columns = ["provider", "kind", "jurisdiction", "health", "cut off", "in flight", "targets (breaker)"]
    if probe:
        columns.insert(4, "reachable")
    for col in columns:
        table.add_column(col)
    for p in body["providers"]:
        cut = f"{p['cut_off']['for_s']:.0f}s: {p['cut_off']['reason'][:60]}" if p["cut_off"] else "-"
        targets = escape(", ".join(target_cell(t) for t in p["targets"]))  # brackets are rich markup
        cells = [p["name"], p["kind"], p["jurisdiction"], p["health"], cut, str(p["inflight"]), targets]
        if probe:
            cells.insert(4, "yes" if p.get("reachable") else "NO")
        table.add_row(*cells)
    _console().print(table)


@click.command()
@_CONFIG
@click.option("--requests", default=4, show_default=True, help="Requests sent per scenario (at once).")
@click.option("--max-tokens", default=8, show_default=True, help="max_tokens of each request.")
@click.option(
    "--wait", default=120.0, show_default=True, help="Seconds a request may take before it counts as lost."
)
def drill(config: Path | None, requests: int, max_tokens: int, wait: float) -> None:
    """Take each provider of each route away in turn (cut off, hang, 500s, slow) behind a fault-injecting
    proxy on 127.0.0.1, send real requests through the route, and print route x lost provider ->
    still answering?, added latency. Exits 1 when a route has a single point of failure."""
    from lumbung.gateway.drill import Outcome, run_drill

    try:
        settings, _ = load_settings(config)
    except LumbungError as exc:
        raise click.ClickException(str(exc)) from exc
    if not settings.routes:
        raise click.ClickException(
            "no routes configured: nothing to drill (see `routes` in docs/configuration.md)"
        )
    console = Console(stderr=True)
    baseline: dict[str, float | None] = {}

    def report(o: Outcome) -> None:
        if not o.provider:
            baseline[o.route] = o.latency_ms
        console.print(
            f"  {o.route} / {o.provider or 'all up'} / {o.fault}: {o.answered}/{o.sent}", highlight=False
        )

    logging.getLogger("lumbung").setLevel(logging.ERROR)  # the table says what failed; no log noise
    outcomes = asyncio.run(
        run_drill(settings, requests=requests, max_tokens=max_tokens, wait=wait, report=report)
    )
    table = Table(title="lumbung drill: route x lost provider")
    for col in ("route", "lost provider", "fault", "answered", "still answering?", "added latency p50"):
        table.add_column(col)
    for o in outcomes:
        base = baseline.get(o.route)
        added = (
            "-"
            if o.latency_ms is None or base is None or not o.provider
            else f"{o.latency_ms - base:+.0f} ms"
        )
        verdict = "yes" if o.ok else "NO"
        table.add_row(o.route, o.provider or "(none)", o.fault, f"{o.answered}/{o.sent}", verdict, added)
    _console().print(table)
    weak = sorted({(o.route, o.provider) for o in outcomes if not o.ok and o.provider})
    broken = sorted({o.route for o in outcomes if not o.ok and not o.provider})
    for route in broken:
        click.echo(f"route {route!r} does not answer even with every provider up", err=True)
    for route, provider in weak:
        click.echo(f"route {route!r}: single point of failure: provider {provider!r}", err=True)
    sys.exit(1 if weak or broken else 0)
