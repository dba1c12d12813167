"""Deterministic mode's throughput cost: aggregate tokens/s of 1, 4 and 8 streaming clients against
lumbung as usual and lumbung with `deterministic: true`, same model (the embedded Gemma 3 270M), same
threads, both servers up at once and taken in turn (A B A B) so the machine's drift hits both alike.

    .venv/bin/python bench/deterministic.py [--threads 2] [--tokens 64] [--rounds 2] [--repeats 2]

Each client sends --rounds greedy raw-prompt /v1/completions requests one after another (fresh prompts
each take: no prefix cache helps either). Prints tokens/s, TTFT p50 and the deterministic/normal ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics

from concurrency import load
from engine_common import conditions, lumbung, model_path, table

CLIENTS = [1, 4, 8]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    print(f"conditions: {conditions()}; model {model_path().name}; threads {args.threads}")
    servers = {
        "normal": lumbung(args.threads, args.parallel, 2048),
        "deterministic": lumbung(args.threads, args.parallel, 2048, LUMBUNG_DETERMINISTIC="true"),
    }
    runs: dict[str, dict[int, list[dict[str, float]]]] = {n: {c: [] for c in CLIENTS} for n in servers}
    with contextlib.ExitStack() as stack:
        for server in servers.values():
            stack.enter_context(server)
        for c in CLIENTS:
            for take in range(args.repeats):
                for name, server in servers.items():
                    tag = f" ({name}, take {take + 1})"
                    runs[name][c].append(asyncio.run(load(server, c, args.rounds, args.tokens, tag)))
    med = {
        name: {c: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for c, rs in by.items()}
        for name, by in runs.items()
    }
    table(
        "aggregate decode and time to first token (medians)",
        ["mode", "clients", "tokens/s", "TTFT p50 s"],
        [[n, str(c), f"{r['tok_s']:.1f}", f"{r['p50']:.2f}"] for n, by in med.items() for c, r in by.items()],
    )
    table(
        "deterministic / normal",
        ["clients", "tokens/s ratio", "TTFT p50 ratio"],
        [
            [
                str(c),
                f"{med['deterministic'][c]['tok_s'] / med['normal'][c]['tok_s']:.2f}",
                f"{med['deterministic'][c]['p50'] / med['normal'][c]['p50']:.2f}",
            ]
            for c in CLIENTS
        ],
    )


if __name__ == "__main__":
    main()
