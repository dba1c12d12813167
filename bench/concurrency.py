"""Concurrency: 1, 4 and 8 streaming clients against lumbung, llama.cpp's llama-server and
llama-cpp-python's server, same model (the embedded Gemma 3 270M), same threads, in one run.

    .bench/venv/bin/python bench/concurrency.py [--threads 2] [--tokens 64] [--rounds 2] [--repeats 2]

Each client sends --rounds requests one after another (raw-prompt /v1/completions, so no server's
chat template is involved; greedy, --tokens new tokens, a distinct prompt each; tokens are counted
as streamed text chunks). Prints aggregate tokens/s and time to first token p50/p95 per server and client
count, then lumbung's ratios to each peer (throughput: higher is better for lumbung; TTFT: lower).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time

import httpx
from engine_common import (
    Server,
    conditions,
    llama_cpp_python_server,
    llama_server,
    lumbung,
    model_path,
    pct,
    stream_completion,
    table,
)

CLIENTS = [1, 4, 8]


async def load(server: Server, clients: int, rounds: int, tokens: int, tag: str = "") -> dict[str, float]:
    ttfts: list[float] = []
    total = 0

    async def client(i: int, http: httpx.AsyncClient) -> None:
        nonlocal total
        for r in range(rounds):
            prompt = f"Client {i}, request {r}{tag}. A long story about the rice barns of Java:"
            res = await stream_completion(http, server.url, prompt, tokens)
            ttfts.append(res.ttft)
            total += res.tokens

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64)) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        wall = time.perf_counter() - start
    return {"tok_s": total / wall, "p50": pct(ttfts, 0.5), "p95": pct(ttfts, 0.95)}


def interleaved(servers: list[Server], args: argparse.Namespace) -> dict[str, dict[int, dict[str, float]]]:
    """Every server started (idle ones use no CPU), then for each client count: A B C A B C ..."""
    runs: dict[str, dict[int, list[dict[str, float]]]] = {s.name: {c: [] for c in CLIENTS} for s in servers}
    with contextlib.ExitStack() as stack:
        for server in servers:
            stack.enter_context(server)
        for c in CLIENTS:
            for _ in range(args.repeats):
                for server in servers:
                    tag = f" (take {len(runs[server.name][c]) + 1})"  # fresh prompts: no server's cache helps
                    runs[server.name][c].append(asyncio.run(load(server, c, args.rounds, args.tokens, tag)))
    return {
        name: {c: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for c, rs in by.items()}
        for name, by in runs.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=8, help="slots of lumbung and llama-server")
    ap.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="all servers up at once, each client count run on each server in turn this many times "
        "(median kept), so a machine whose speed drifts weighs on every server alike; 0: one server "
        "after another, once",
    )
    args = ap.parse_args()
    model = model_path()
    print(f"conditions: {conditions()}; model {model.name}; threads {args.threads}")
    servers = [
        lumbung(args.threads, args.parallel, 2048),
        llama_server(model, args.threads, args.parallel, 2048),
        llama_cpp_python_server(model, args.threads, 4096),
    ]
    results: dict[str, dict[int, dict[str, float]]] = {}
    if args.repeats == 0:  # one server after another, each run once (the original procedure)
        for server in servers:
            if server is None:
                continue
            with server:
                results[server.name] = {
                    c: asyncio.run(load(server, c, args.rounds, args.tokens)) for c in CLIENTS
                }
    else:
        results = interleaved([s for s in servers if s is not None], args)
    rows = [
        [name, str(c), f"{r['tok_s']:.1f}", f"{r['p50']:.2f}", f"{r['p95']:.2f}"]
        for name, by in results.items()
        for c, r in by.items()
    ]
    table(
        "aggregate decode and time to first token",
        ["server", "clients", "tokens/s", "TTFT p50 s", "TTFT p95 s"],
        rows,
    )
    ours = results["lumbung"]
    ratio_rows = []
    for peer, by in results.items():
        if peer == "lumbung":
            continue
        for c in CLIENTS:
            ratio_rows.append(
                [
                    peer,
                    str(c),
                    f"{ours[c]['tok_s'] / by[c]['tok_s']:.2f}x",
                    f"{ours[c]['p50'] / by[c]['p50']:.2f}",
                    f"{ours[c]['p95'] / by[c]['p95']:.2f}",
                ]
            )
    table(
        "lumbung / peer (tokens/s: >1 is better; TTFT: <1 is better)",
        ["peer", "clients", "tokens/s", "TTFT p50", "TTFT p95"],
        ratio_rows,
    )


if __name__ == "__main__":
    main()
