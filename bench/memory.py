"""Memory: lumbung against llama-server serving Gemma 3 270M with the same slots and context, after
the same warm-up: RSS and anonymous memory (what the process allocated, not the mapped model file).

Warm-up: every slot reads a ~2k-token prompt (one shared system prompt and a question of its own)
and answers, twice over (the second round hits each server's prompt cache). Then each process's
VmRSS and RssAnon from /proc. lumbung also reports where its memory goes (/v1/models'
memory_breakdown: weights, KV, KV checkpoints, compute buffers).

    .bench/venv/bin/python bench/memory.py            # or LUMBUNG_LLAMA_SERVER=/path/llama-server
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import httpx
from engine_common import conditions, llama_server, lumbung, model_path, table

SYSTEM = " ".join(
    f"Rule {i}: the barn of plot {i % 13} opens at {5 + i % 4} in the morning." for i in range(110)
)


def proc_memory(pid: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            fields[key] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["RssAnon"]


async def warm_up(url: str, slots: int) -> list[int]:
    """Two rounds of one request per slot; the cached prompt tokens of the second round."""

    async def ask(client: httpx.AsyncClient, i: int) -> int:
        body = {
            "model": "gemma3:270m",
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Client {i}: when does the barn of plot {i} open?"},
            ],
            "max_tokens": 32,
            "temperature": 0,
        }
        r = await client.post(url + "/v1/chat/completions", json=body, timeout=600)
        r.raise_for_status()
        usage = r.json().get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        return int(details.get("cached_tokens") or 0)

    async with httpx.AsyncClient() as client:
        await asyncio.gather(*(ask(client, i) for i in range(slots)))
        return list(await asyncio.gather(*(ask(client, i) for i in range(slots))))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--context", type=int, default=4096)
    args = parser.parse_args()
    model = model_path()
    print(f"memory, Gemma 3 270M, {args.parallel} slots x {args.context} tokens; {conditions()}")
    rows, measured = [], {}
    only_gemma = {  # the embedded default model (loaded at start) off: one model, as llama-server
        "LUMBUNG_SERVE_DEFAULT_MODEL": "false",
        "LUMBUNG_MODELS": json.dumps([{"id": "gemma3:270m", "path": str(model)}]),
    }
    servers = [
        lumbung(args.threads, args.parallel, args.context, **only_gemma),
        llama_server(model, args.threads, args.parallel, args.context),
    ]
    for server in servers:
        if server is None:
            print("llama-server: not built (bench/setup) and LUMBUNG_LLAMA_SERVER unset; skipped")
            continue
        with server:
            cached = asyncio.run(warm_up(server.url, args.parallel))
            assert server.proc is not None
            rss, anon = proc_memory(server.proc.pid)
            measured[server.name] = (rss, anon)
            if server.name == "lumbung":
                body = httpx.get(server.url + "/v1/models", timeout=10).json()
                for m in body["data"]:
                    if m.get("loaded"):
                        parts = ", ".join(f"{k} {v / 2**20:.1f}" for k, v in m["memory_breakdown"].items())
                        print(f"lumbung {m['id']} memory_breakdown (MiB): {parts}")
            rows.append(
                [server.name, f"{rss / 2**20:.0f}", f"{anon / 2**20:.0f}", ",".join(map(str, cached))]
            )
    if "lumbung" in measured and "llama-server" in measured:
        (lr, la), (sr, sa) = measured["lumbung"], measured["llama-server"]
        rows.append(["lumbung / llama-server", f"{lr / sr:.2f}x", f"{la / sa:.2f}x", ""])
    table("after the warm-up", ["server", "RSS MiB", "anonymous MiB", "cached tokens (2nd round)"], rows)


if __name__ == "__main__":
    main()
