"""Soak: lumbung under mixed traffic for N minutes, watching for slow leaks.

One process: lumbung's real app (``server.build_app``: the embedded model on the local engine, plus two
routes over fake upstream providers from tests/support/fake_upstream.py) served by uvicorn on
127.0.0.1, and client workers on another thread sending a mix over real HTTP: every surface (OpenAI
chat and completions, the pass-through path, Responses stored then deleted, Anthropic, Ollama), whole
and streamed, clients that hang up mid-stream, and a fault controller that keeps switching the primary
upstream between healthy, 500s, errors mid-stream, resets and hangs, so failover runs all the time.

Every few seconds it samples the process's RSS, open files, the server loop's asyncio tasks and the
SQLite database's size. After a warm-up, growth must stay bounded: the last quarter of the run against
the first quarter after warm-up. Prints the samples and a result line; exits 1 if a bound is passed or
the server stops answering.

    python bench/soak.py [--minutes 30] [--workers 8] [--no-local]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.fake_upstream import FakeUpstream  # noqa: E402

# Bounds on growth from the first quarter after warm-up to the last quarter (medians).
RSS_GROWTH_MB = 48.0
FDS_GROWTH = 16
TASKS_GROWTH = 32
DB_GROWTH_MB = 8.0
FAULTS = [
    ("ok", {}),
    ("500", {}),
    ("error_after", {"k": 2}),
    ("reset_after", {"k": 1}),
    ("stall_after", {"k": 1}),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Sample:
    at: float
    rss_mb: float
    fds: int
    tasks: int
    db_mb: float
    requests: int


@dataclass
class Tally:
    outcomes: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, what: str) -> None:
        with self.lock:
            self.outcomes[what] += 1
            self.requests += 1


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def db_mb(home: Path) -> float:
    return sum(p.stat().st_size for p in home.glob("lumbung.db*")) / 2**20


# -- traffic --------------------------------------------------------------------------------------


def chat(model: str, stream: bool, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": f"soak {random.random()}"}],
        "stream": stream,
        "max_tokens": 4,
        **extra,
    }


async def read(response: httpx.Response) -> str:
    body = (await response.aread()).decode(errors="replace")
    if response.status_code != 200:
        return f"http {response.status_code}"
    if '"error"' in body[-400:] or "event: error" in body or "response.failed" in body:
        return "error in stream"
    return "ok"


async def one(client: httpx.AsyncClient, local: bool) -> str:
    kind = random.choice(SCENARIOS if local else [s for s in SCENARIOS if not s.startswith("local")])
    if kind == "passthrough stream":
        async with client.stream("POST", "/v1/chat/completions", json=chat("pt", True)) as r:
            return f"{kind}: {await read(r)}"
    if kind == "openai whole":
        r = await client.post("/v1/chat/completions", json=chat("typed", False))
        return f"{kind}: {await read(r)}"
    if kind == "openai stream":
        async with client.stream("POST", "/v1/chat/completions", json=chat("typed", True)) as r:
            return f"{kind}: {await read(r)}"
    if kind == "anthropic stream":
        headers = {"anthropic-version": "2023-06-01"}
        async with client.stream("POST", "/v1/messages", json=chat("typed", True), headers=headers) as r:
            return f"{kind}: {await read(r)}"
    if kind == "ollama stream":
        body = chat("typed", True)
        del body["max_tokens"]
        async with client.stream("POST", "/api/chat", json=body) as r:
            return f"{kind}: {await read(r)}"
    if kind == "responses stored":
        r = await client.post(
            "/v1/responses", json={"model": "typed", "input": "soak", "store": True, "max_output_tokens": 16}
        )
        if r.status_code != 200:
            return f"{kind}: http {r.status_code}"
        rid = r.json()["id"]
        got = await client.get(f"/v1/responses/{rid}")
        gone = await client.delete(f"/v1/responses/{rid}")
        return f"{kind}: {'ok' if got.status_code == gone.status_code == 200 else 'lost'}"
    if kind == "hang-up mid-stream":
        async with client.stream("POST", "/v1/chat/completions", json=chat("pt", True)) as r:
            async for _ in r.aiter_bytes():
                break
        return f"{kind}: done"
    if kind == "local openai":
        r = await client.post("/v1/chat/completions", json=chat("default", False))
        return f"{kind}: {await read(r)}"
    if kind == "local ollama stream":
        body = {"model": "default", "prompt": "soak", "options": {"num_predict": 4}}
        async with client.stream("POST", "/api/generate", json=body) as r:
            return f"{kind}: {await read(r)}"
    raise AssertionError(kind)


SCENARIOS = [
    "passthrough stream",
    "passthrough stream",
    "openai whole",
    "openai stream",
    "anthropic stream",
    "ollama stream",
    "responses stored",
    "hang-up mid-stream",
    "local openai",
    "local ollama stream",
]


async def worker(base: str, until: float, tally: Tally, local: bool) -> None:
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        while time.monotonic() < until:
            try:
                tally.add(await one(client, local))
            except httpx.HTTPError as exc:
                tally.add(f"client error {type(exc).__name__}")
            await asyncio.sleep(0.02)


async def faults(primary: FakeUpstream, backup: FakeUpstream, until: float) -> None:
    """The primary upstream misbehaves in turns, a few seconds each (the backup stays healthy)."""
    while time.monotonic() < until:
        mode, options = random.choice(FAULTS)
        primary.set(mode, **options)
        for upstream in (primary, backup):  # what the fakes record is this process's memory too
            upstream.seen.clear()
            upstream.disconnects.clear()
        await asyncio.sleep(3)
    primary.set("ok")


def clients(
    base: str, seconds: float, workers: int, tally: Tally, local: bool, upstreams: list[FakeUpstream]
) -> None:
    async def run() -> None:
        until = time.monotonic() + seconds
        load = (worker(base, until, tally, local) for _ in range(workers))
        await asyncio.gather(faults(upstreams[0], upstreams[1], until), *load)

    try:
        asyncio.run(run())
    except BaseException:
        tally.add("load generator crashed")
        raise


# -- the server and the samples -------------------------------------------------------------------


async def soak(minutes: float, workers: int, local: bool, every: float) -> int:
    import uvicorn

    from lumbung.server import build_app
    from lumbung.settings import Settings
    from lumbung.surfaces.http import SERVER_OPTIONS

    primary, backup = FakeUpstream("a", words=6, delay=0.05).start(), FakeUpstream("b", words=6).start()
    home = Path(tempfile.mkdtemp(prefix="lumbung-soak-"))
    providers = [
        {"name": n, "kind": "openai", "base_url": u.base_url, "jurisdiction": "ID", "timeouts": {"idle": 2.0}}
        for n, u in (("a", primary), ("b", backup))
    ]
    routes = [
        {"name": "pt", "tiers": [["a/m"], ["b/m"]]},
        {"name": "typed", "tiers": [["a/m"], ["b/m"]], "passthrough": False},
    ]
    settings = Settings(
        home=home, serve_default_model=local, providers=providers, routes=routes, log_level="warning"
    )
    app = build_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **SERVER_OPTIONS)
    )
    serving = asyncio.create_task(server.serve())
    base = f"http://127.0.0.1:{port}"
    while not server.started:
        if serving.done():
            await serving
            raise RuntimeError("the server did not start")
        await asyncio.sleep(0.05)
    async with httpx.AsyncClient(base_url=base) as probe:
        while (await probe.get("/health")).status_code != 200:
            await asyncio.sleep(0.2)
    gc.freeze()  # as `lumbung serve` does after start-up

    seconds = minutes * 60
    tally = Tally()
    load = threading.Thread(
        target=clients, args=(base, seconds, workers, tally, local, [primary, backup]), daemon=True
    )
    start = time.monotonic()
    load.start()
    samples: list[Sample] = []
    print(f"soak: {minutes:g} min, {workers} workers, local model {'on' if local else 'off'}, port {port}")
    print(f"{'t (s)':>7} {'RSS MiB':>8} {'fds':>5} {'tasks':>6} {'DB MiB':>7} {'requests':>9}")
    while load.is_alive():
        await asyncio.to_thread(load.join, every)
        if not load.is_alive():
            break  # the load has ended: a sample now would show the idle server, not the soak
        s = Sample(
            time.monotonic() - start,
            rss_mb(),
            len(os.listdir("/proc/self/fd")),
            len(asyncio.all_tasks()),
            db_mb(home),
            tally.requests,
        )
        samples.append(s)
        print(
            f"{s.at:7.0f} {s.rss_mb:8.1f} {s.fds:5d} {s.tasks:6d} {s.db_mb:7.2f} {s.requests:9d}", flush=True
        )

    # The server still answers after all of it.
    async with httpx.AsyncClient(base_url=base, timeout=30) as probe:
        final = await probe.post("/v1/chat/completions", json=chat("typed", False))
    server.should_exit = True
    await serving
    primary.stop()
    backup.stop()
    return report(samples, tally, final.status_code)


def report(samples: list[Sample], tally: Tally, final_status: int) -> int:
    if not samples or tally.outcomes["load generator crashed"]:
        print(json.dumps({"result": "FAIL", "failed": ["the load generator stopped early"]}))
        return 1
    warm = [s for s in samples if s.at >= samples[-1].at * 0.2]  # the first fifth warms up
    quarter = max(1, len(warm) // 4)
    first, last = warm[:quarter], warm[-quarter:]

    def growth(pick: Any) -> float:
        return float(statistics.median(pick(s) for s in last) - statistics.median(pick(s) for s in first))

    checks = {
        "rss_mb": (growth(lambda s: s.rss_mb), RSS_GROWTH_MB),
        "open_files": (growth(lambda s: s.fds), FDS_GROWTH),
        "asyncio_tasks": (growth(lambda s: s.tasks), TASKS_GROWTH),
        "db_mb": (growth(lambda s: s.db_mb), DB_GROWTH_MB),
    }
    failed = [name for name, (grew, bound) in checks.items() if grew > bound]
    if final_status != 200:
        failed.append(f"final request {final_status}")
    lost = {k: v for k, v in tally.outcomes.items() if k.endswith((": lost", "http 500"))}
    if lost:
        failed.append(f"lost or 500: {lost}")
    print("\noutcomes:")
    for what, count in sorted(tally.outcomes.items()):
        print(f"  {count:7d}  {what}")
    result = {
        "result": "FAIL" if failed else "PASS",
        "seconds": round(samples[-1].at),
        "requests": tally.requests,
        "growth": {name: {"grew": round(grew, 2), "bound": bound} for name, (grew, bound) in checks.items()},
        "failed": failed,
    }
    print("\n" + json.dumps(result))
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--no-local", action="store_true", help="no embedded model: upstream routes only")
    args = parser.parse_args()
    sys.exit(asyncio.run(soak(args.minutes, args.workers, not args.no_local, args.every)))


if __name__ == "__main__":
    main()
