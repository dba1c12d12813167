"""``lumbung ps``: the local models a running server has loaded, their memory and their requests."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from lumbung.cli_client import get_json


def _mib(value: Any) -> str:
    return f"{int(value) / 2**20:,.0f} MiB" if isinstance(value, int) else "-"


def _context(m: dict[str, Any]) -> str:
    """Tokens a request may use, and the trained context when the budget or config set it lower."""
    ctx, trained = m.get("context_length"), m.get("context_length_trained")
    if not isinstance(ctx, int):
        return "-"
    return f"{ctx:,}" if not isinstance(trained, int) or trained == ctx else f"{ctx:,} (trained {trained:,})"


def _kv(m: dict[str, Any]) -> str:
    """KV cache in use of its size; a quantized cache says its type and what it saves against f16;
    then what one sequence at the full context takes."""
    if "kv_bytes" not in m:
        return "-"
    text = f"{_mib(m.get('kv_bytes_used'))} of {_mib(m.get('kv_bytes'))}"
    kind, f16, size = m.get("kv_cache_type"), m.get("kv_bytes_f16"), m.get("kv_bytes")
    if kind and kind != "f16" and isinstance(f16, int) and isinstance(size, int):
        text += f" {kind}, saves {_mib(f16 - size)}"
    per_sequence = m.get("kv_bytes_per_sequence")
    if isinstance(per_sequence, int):
        text += f"; {_mib(per_sequence)} a sequence"
    return text


def _unloads(m: dict[str, Any], now: float) -> str:
    at = m.get("expires_at")
    if at is None:  # kept forever, or busy (the keep-alive counts from the last request)
        return "in use" if m.get("active_requests") or m.get("queued_requests") else "never"
    left = max(0, int(at - now))
    return f"in {left // 60}m{left % 60:02d}s" if left >= 60 else f"in {left}s"


def _speculation(m: dict[str, Any]) -> str:
    """Speculative decoding's mode and how many of its draft tokens the model accepted, and the
    tokens grammars forced that went in as batches (fast-forwarded)."""
    forced = m.get("fast_forwarded_tokens") or 0
    ahead = f"; {forced:,} forced tokens fast-forwarded" if forced else ""
    return _drafts(m) + ahead


def _drafts(m: dict[str, Any]) -> str:
    spec = m.get("speculative")
    if not isinstance(spec, dict):
        return "off"
    rate = spec.get("acceptance_rate")
    taken = (
        f"{rate:.0%} of {spec.get('draft_tokens', 0):,} drafts accepted"
        if rate is not None
        else "no drafts yet"
    )
    return f"{spec.get('mode')}, {taken}"


def rows(models: list[dict[str, Any]], now: float, include_all: bool) -> list[list[str]]:
    """One table row per model (pure: unit-tested)."""
    out = []
    for m in models:
        if not m.get("loaded") and not include_all:
            continue
        if not m.get("loaded"):
            out.append([m["id"], "-", _context(m), "-", "-", "-", "-", "not loaded", "-"])
            continue
        cache = m.get("prefix_cache") or {}
        lookups = cache.get("hits", 0) + cache.get("misses", 0)
        hit = (
            f"{cache.get('entries', 0)} kept, {100 * cache.get('hits', 0) // lookups}% hits"
            if lookups
            else "-"
        )
        running = f"{m.get('active_requests', 0)}/{m.get('parallel', '?')}"
        queued = str(m.get("queued_requests", 0))
        kv = _kv(m)
        out.append(
            [
                m["id"],
                _mib(m.get("memory_bytes")),
                _context(m),
                kv,
                running,
                queued,
                hit,
                _unloads(m, now),
                _speculation(m),
            ]
        )
    return out


def memory_line(body: dict[str, Any]) -> str | None:
    """Where the server's memory goes: the loaded models' weights, KV caches, compute buffers,
    adapters and draft models, and the rest of the process (Python, the HTTP stack, allocator
    slack) (pure: tested)."""
    process = body.get("process") or {}
    rss = process.get("rss_bytes")
    if not isinstance(rss, int):
        return None
    parts = {"weights": 0, "kv": 0, "kv_checkpoints": 0, "compute": 0, "adapters": 0, "draft_model": 0}
    for m in body.get("data", []):
        for key, value in (m.get("memory_breakdown") or {}).items():
            if key in parts and isinstance(value, int):
                parts[key] += value
    labels = {"kv": "KV", "kv_checkpoints": "KV checkpoints", "draft_model": "draft model"}
    named = ", ".join(f"{labels.get(k, k)} {_mib(v)}" for k, v in parts.items() if v)
    anon = process.get("anon_bytes")
    anon_text = f" (anonymous {_mib(anon)})" if isinstance(anon, int) else ""
    rest = rss - sum(parts.values())
    return f"memory: RSS {_mib(rss)}{anon_text}" + (f" = {named}, the rest {_mib(rest)}" if named else "")


@click.command("ps")
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML config file (default: $LUMBUNG_CONFIG).",
)
@click.option("--url", default=None, help="Server to ask (default: the configured host and port).")
@click.option(
    "--api-key", envvar="LUMBUNG_API_KEY", default=None, help="API key (default: $LUMBUNG_API_KEY)."
)
@click.option("--all", "include_all", is_flag=True, help="Also list configured models that are not loaded.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON of GET /v1/models.")
def ps(config: Path | None, url: str | None, api_key: str | None, include_all: bool, as_json: bool) -> None:
    """Show the loaded local models: memory, context, KV cache in use and what one sequence takes,
    running/parallel requests, queue, prefix cache, unload time, speculative decoding's acceptance
    rate and fast-forwarded tokens; then where the server's memory goes (weights, KV caches, compute
    buffers, draft models, the rest)."""
    url, body = get_json(config, url, api_key, "/v1/models")
    models: list[dict[str, Any]] = body["data"]
    if as_json:
        click.echo(json.dumps(models, indent=2))
        return
    table = Table(title=f"models at {url}")
    for col in (
        "model",
        "memory",
        "context",
        "KV in use",
        "running",
        "queued",
        "prefix cache",
        "unloads",
        "speculation",
    ):
        table.add_column(col)
    for row in rows(models, time.time(), include_all):
        table.add_row(*row)
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(table)
    line = memory_line(body)
    if line:
        console.print(line, markup=False)
