"""Shadow traffic's cost to the client: the same fast mock upstream behind four `lumbung serve`
processes, two with nothing on ("off" and "off-again": their difference is the noise of the
measurement), one recording every request ("record"), one recording and mirroring every request to a
candidate (a second fast mock) in the background ("shadow"). One request at a time, interleaved in
batches of 10 so a busy machine weighs on all alike. Prints p50/p90 client latency and the server's
CPU per request, with each p50's ratio to "off" and its bootstrap 95% interval.

    python bench/shadow.py [--mode whole|stream] [--rounds 2] [--gap-ms 20]

The ratio is what docs/performance.md reports: shadow and recording work leaves the request's path
(a put on a bounded queue), so client latency should be within noise of "off" (as far from it as
"off-again" is); the CPU column shows what the background work costs the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway_ab import cpu_seconds
from gateway_overhead import ROOT, Pool, _exchange, free_port, settle, wait_http

VARIANTS: dict[str, dict[str, Any]] = {
    "off": {},
    "off-again": {},
    "record": {"record": {"rate": 1.0}},
    "shadow": {"record": {"rate": 1.0}, "shadow": {"target": "candidate", "fraction": 1.0, "queue": 64}},
}


def start(
    work: Path, cpus: set[int] | None = None
) -> tuple[dict[str, int], dict[str, int], list[subprocess.Popen[bytes]]]:
    """The mocks and servers, on ``cpus`` when given."""

    def pin() -> None:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    mocks = [free_port(), free_port()]
    procs = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "bench/gateway_overhead_mock.py"), str(port)], preexec_fn=pin
        )
        for port in mocks
    ]
    providers = [
        {"name": name, "kind": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "jurisdiction": "local"}
        for name, port in zip(("live", "cand"), mocks, strict=True)
    ]
    ports: dict[str, int] = {}
    pids: dict[str, int] = {}
    for name, options in VARIANTS.items():
        config = {
            "serve_default_model": False,
            "providers": providers,
            "routes": [
                {"name": "bench", "tiers": [["live/bench"]], **options},
                {"name": "candidate", "tiers": [["cand/bench"]]},
            ],
        }
        (work / f"{name}.yaml").write_text(json.dumps(config))
        port = free_port()
        env = {**os.environ, "LUMBUNG_HOME": str(work / name), "PYTHONPATH": str(ROOT / "src")}
        log = (work / f"{name}.log").open("wb")
        command = [
            sys.executable,
            "-m",
            "lumbung",
            "serve",
            "--port",
            str(port),
            "--config",
            str(work / f"{name}.yaml"),
        ]
        procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=log, preexec_fn=pin))
        wait_http(port, "/health", procs[-1])
        ports[name], pids[name] = port, procs[-1].pid
    return ports, pids, procs


async def run(ports: dict[str, int], pids: dict[str, int], stream: bool, rounds: int, gap: float) -> None:
    body = {"model": "bench", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    for port in ports.values():
        await settle(port, body)
    data = json.dumps(body).encode()
    payload = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(data)}\r\n\r\n"
    ).encode() + data
    pools = {k: Pool(p, 1) for k, p in ports.items()}
    latency: dict[str, list[float]] = {k: [] for k in ports}
    cpu = dict.fromkeys(ports, 0.0)
    for _ in range(rounds * 40):
        for k in ports:
            before = cpu_seconds(pids[k])
            for _ in range(10):
                t = time.perf_counter()
                if not await _exchange(pools[k], payload):
                    raise RuntimeError(f"{k}: a request failed")
                latency[k].append((time.perf_counter() - t) * 1000)
                await asyncio.sleep(gap)  # room for the background work, as between real requests
            cpu[k] += cpu_seconds(pids[k]) - before
    n = rounds * 400
    mode = "stream" if stream else "whole"
    off = statistics.median(latency["off"])
    for k, values in latency.items():
        values.sort()
        p50 = statistics.median(values)
        low, high = ratio_interval(values, latency["off"])
        print(
            f"{mode} {k:9} p50 {p50:.3f} ms  p90 {values[9 * n // 10]:.3f} ms  "
            f"CPU {cpu[k] / n * 1e6:.0f} us/request  p50 ratio to off {p50 / off:.3f} "
            f"(95% {low:.3f}-{high:.3f})"
        )


def ratio_interval(values: list[float], base: list[float], draws: int = 2000) -> tuple[float, float]:
    """Bootstrap 95% interval of median(values) / median(base), both resampled with replacement."""
    rng = random.Random(0)
    ratios = sorted(
        statistics.median(rng.choices(values, k=len(values)))
        / statistics.median(rng.choices(base, k=len(base)))
        for _ in range(draws)
    )
    return ratios[int(0.025 * draws)], ratios[int(0.975 * draws) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["whole", "stream"], default="whole")
    parser.add_argument("--rounds", type=int, default=2, help="Rounds of 400 requests per server.")
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=20.0,
        help="Pause after each request (a server's request rate is about 1000 / (latency + gap)); "
        "a gap shorter than the shadow copy's CPU time saturates the process's one event loop.",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="The client alone on the first CPU, servers and mocks on the others: the background work "
        "then cannot delay the client's reading of its answer (as on a real deployment, where the "
        "client runs elsewhere).",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lumbung-shadow-"))
    cpus = None
    if args.pin:
        mine = sorted(os.sched_getaffinity(0))
        if len(mine) < 2:
            parser.error("--pin needs two CPUs")
        os.sched_setaffinity(0, {mine[0]})
        cpus = set(mine[1:])
    ports, pids, procs = start(work, cpus)
    try:
        import uvloop

        uvloop.run(run(ports, pids, args.mode == "stream", args.rounds, args.gap_ms / 1000))
        shadowed = work / "shadow" / "recordings" / "shadow-bench.jsonl"
        pairs = shadowed.read_text().count("\n") if shadowed.exists() else 0
        print(f"shadow-bench.jsonl holds {pairs} exchanges so far (live and candidate)")
    finally:
        for p in procs:
            p.terminate()


if __name__ == "__main__":
    main()
