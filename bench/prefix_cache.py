"""Prefix cache: time to first token with a shared ~1,500-token system prompt, cold (never seen)
against warm (the same system prompt, a different question), on lumbung and on llama-server.

    .bench/venv/bin/python bench/prefix_cache.py [--threads 2] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

import httpx
from engine_common import conditions, llama_server, lumbung, model_path, stream_chat, table


def system_prompt(tag: int) -> str:
    rules = " ".join(f"Rule {i}: grain from barn {i % 7} is dried for {i % 5 + 2} days." for i in range(95))
    return f"Cooperative handbook, edition {tag}. {rules}"


async def measure(url: str, runs: int) -> tuple[list[float], list[float], int]:
    cold, warm = [], []
    async with httpx.AsyncClient() as http:
        for run in range(runs):
            system = system_prompt(run * 1000 + id(url) % 997)  # new text: never cached before
            msgs = [
                {"role": "system", "content": system},
                {"role": "user", "content": "Which barn is first?"},
            ]
            cold.append((await stream_chat(http, url, msgs, 4)).ttft)
            msgs[1] = {"role": "user", "content": "How long is grain dried?"}
            warm.append((await stream_chat(http, url, msgs, 4)).ttft)
        tokens = (
            await http.post(
                url + "/v1/chat/completions", json={"model": "gemma3:270m", "messages": msgs, "max_tokens": 1}
            )
        ).json()["usage"]["prompt_tokens"]
    return cold, warm, tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    model = model_path()
    print(f"conditions: {conditions()}; model {model.name}; threads {args.threads}")
    rows = []
    for server in (lumbung(args.threads, 4, 2048), llama_server(model, args.threads, 4, 2048)):
        if server is None:
            continue
        with server:
            cold, warm, tokens = asyncio.run(measure(server.url, args.runs))
        c, w = statistics.median(cold), statistics.median(warm)
        rows.append([server.name, str(tokens), f"{c:.3f}", f"{w:.3f}", f"{c / w:.1f}x"])
    table(
        "time to first token, shared system prompt (median)",
        ["server", "prompt tokens", "cold s", "warm s", "warm speed-up"],
        rows,
    )
    print("\ntarget: lumbung warm >= 10x faster than cold")


if __name__ == "__main__":
    main()
