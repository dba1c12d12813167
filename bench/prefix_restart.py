"""A warm start: time to first token of a request sharing a ~3,000-token system prompt, cold (a
fresh server that never saw it) against right after a restart of a server that had served it, with
the prefix cache saved at shutdown and read back at start (`prefix_cache_persist_mb`). The embedded
Gemma 3 270M, as the other engine benches.

    .bench/venv/bin/python bench/prefix_restart.py [--threads 2] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
from pathlib import Path

import httpx
from engine_common import conditions, lumbung, stream_chat, table


def system_prompt(tag: int) -> str:
    rules = " ".join(f"Rule {i}: grain from barn {i % 7} is dried for {i % 5 + 2} days." for i in range(190))
    return f"Cooperative handbook, edition {tag}. {rules}"


async def ttft(url: str, system: str, question: str) -> float:
    async with httpx.AsyncClient() as http:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        return (await stream_chat(http, url, messages, 8)).ttft


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    home = Path(os.environ.get("LUMBUNG_HOME", Path.home() / ".lumbung"))
    env = {
        "LUMBUNG_HOME": str(home),
        "LUMBUNG_PREFIX_CACHE_PERSIST_MB": "512",
        "LUMBUNG_PREFIX_CACHE_MB": "512",
    }
    cold, warm = [], []
    for run in range(args.runs):
        system = system_prompt(run * 7919 + os.getpid())  # new text: never cached before
        for path in (home / "cache" / "prefix").glob("gemma3*.kv"):
            path.unlink()
        with lumbung(args.threads, 1, 8192, **env) as server:
            cold.append(asyncio.run(ttft(server.url, system, "Which barn is first?")))
        with lumbung(args.threads, 1, 8192, **env) as server:  # restarted: the cache read back
            warm.append(asyncio.run(ttft(server.url, system, "Which barn dries longest?")))
    c, w = statistics.median(cold), statistics.median(warm)
    table(
        f"TTFT with a shared ~3k-token system prompt, {args.runs} runs ({conditions()})",
        ["", "cold (fresh server)", "after a restart", "ratio"],
        [["lumbung", f"{c * 1000:,.0f} ms", f"{w * 1000:,.0f} ms", f"{c / w:.1f}x faster"]],
    )


if __name__ == "__main__":
    main()
