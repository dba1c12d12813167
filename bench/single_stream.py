"""Single stream: lumbung over HTTP against llama-cpp-python called directly (no server), same model,
same threads, same raw prompt (no chat template), in one run. Decode tokens/s is counted from the
first token to the last, by text chunks on both sides.

    .bench/venv/bin/python bench/single_stream.py [--threads 2] [--tokens 128] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx
from engine_common import conditions, lumbung, model_path, table

PROMPT = "Tell a long story about the rice barns of Java and the people who keep them."


def direct(model: str, threads: int, tokens: int, runs: int) -> list[float]:
    from llama_cpp import Llama

    llm = Llama(model_path=model, n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False)
    rates = []
    for _ in range(runs):
        first = last = 0.0
        n = 0
        for part in llm.create_completion(PROMPT, max_tokens=tokens, temperature=0, stream=True):
            if part["choices"][0]["text"]:
                last = time.perf_counter()
                first = first or last
                n += 1
        rates.append((n - 1) / max(last - first, 1e-9))
    llm.close()
    return rates


async def over_http(url: str, tokens: int, runs: int) -> list[float]:
    """Streams /v1/completions (a raw prompt, as the direct call gets); tokens = text chunks."""
    rates = []
    body = {"model": "gemma3:270m", "prompt": PROMPT, "max_tokens": tokens, "temperature": 0, "stream": True}
    async with httpx.AsyncClient(timeout=600) as http:
        for _ in range(runs):
            first = last = 0.0
            n = 0
            async with http.stream("POST", url + "/v1/completions", json=body) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data: {") and json.loads(line[6:])["choices"][0].get("text"):
                        last = time.perf_counter()
                        first = first or last
                        n += 1
            rates.append((n - 1) / max(last - first, 1e-9))
    return rates


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    model = model_path()
    print(f"conditions: {conditions()}; model {model.name}; threads {args.threads}")
    ours_rates: list[float] = []
    peer_rates: list[float] = []
    for _ in range(2):  # interleaved, so a change in machine load hits both alike
        with lumbung(args.threads, 1, 2048) as server:
            ours_rates += asyncio.run(over_http(server.url, args.tokens, args.runs))
        peer_rates += direct(str(model), args.threads, args.tokens, args.runs)
    ours, peer = statistics.median(ours_rates), statistics.median(peer_rates)
    table(
        "single stream decode (median)",
        ["engine", "tokens/s"],
        [["lumbung over HTTP", f"{ours:.1f}"], ["llama-cpp-python direct", f"{peer:.1f}"]],
    )
    print(f"\nlumbung / direct llama-cpp-python: {ours / peer:.2f} (target >= 0.95)")


if __name__ == "__main__":
    main()
