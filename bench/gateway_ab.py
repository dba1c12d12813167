"""A/B of the gateway's per-request cost: lumbung from another source tree (A) against this one (B),
both in front of the same fast mock upstream, one request at a time, interleaved in small batches so
that a busy or drifting machine weighs on both alike. Prints p10/p50/p90 latency and the server
process's CPU per request, with the mock reached directly as the reference.

    git worktree add /tmp/lumbung-base <REV>
    python bench/gateway_ab.py /tmp/lumbung-base/src [--mode whole|stream] [--rounds 3] [--floor]

``--floor`` adds the bare relay of bench/gateway_overhead_floor.py as a third reference: with 400
requests per round and path, interleaved, this is the steadier measure of what lumbung adds at a
light rate (bench/gateway_overhead.py's 10 req/s step has 100 requests per path).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gateway_overhead import ROOT, Pool, _exchange, free_port, settle, wait_http


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(
    base_src: str, work: Path, floor: bool = False
) -> tuple[dict[str, int], dict[str, int], list[subprocess.Popen[bytes]]]:
    mock = free_port()
    procs = [subprocess.Popen([sys.executable, str(ROOT / "bench/gateway_overhead_mock.py"), str(mock)])]
    if floor:
        relay = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "bench/gateway_overhead_floor.py"),
                    str(relay),
                    f"http://127.0.0.1:{mock}/v1",
                ],
                env=env,
            )
        )
        wait_http(relay, "/", procs[-1])
    provider = {
        "name": "mock",
        "kind": "openai",
        "base_url": f"http://127.0.0.1:{mock}/v1",
        "jurisdiction": "local",
    }
    config = {
        "serve_default_model": False,
        "providers": [provider],
        "routes": [{"name": "bench", "tiers": [["mock/bench"]]}],
    }
    (work / "lumbung.yaml").write_text(json.dumps(config))
    ports, pids = {"direct": mock}, {"direct": procs[0].pid}
    if floor:
        ports["floor"], pids["floor"] = relay, procs[1].pid
    for name, src in (("A", base_src), ("B", str(ROOT / "src"))):
        port = free_port()
        env = {**os.environ, "LUMBUNG_HOME": str(work / name), "PYTHONPATH": src}
        log = (work / f"{name}.log").open("wb")
        command = [
            sys.executable,
            "-m",
            "lumbung",
            "serve",
            "--port",
            str(port),
            "--config",
            str(work / "lumbung.yaml"),
        ]
        procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=log))
        wait_http(port, "/health", procs[-1])
        ports[name], pids[name] = port, procs[-1].pid
    return ports, pids, procs


async def run(ports: dict[str, int], pids: dict[str, int], stream: bool, rounds: int) -> None:
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
                await asyncio.sleep(0.004)
            cpu[k] += cpu_seconds(pids[k]) - before
    n = rounds * 400
    mode = "stream" if stream else "whole"
    direct = statistics.median(latency["direct"])
    for k, values in latency.items():
        values.sort()
        p50 = statistics.median(values)
        added = "" if k == "direct" else f"  added p50 {p50 - direct:+.3f} ms"
        print(
            f"{mode} {k:6} p10 {values[n // 10]:.3f} ms  p50 {p50:.3f} ms  "
            f"p90 {values[9 * n // 10]:.3f} ms  CPU {cpu[k] / n * 1e6:.0f} us/request{added}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base_src", help="The src/ folder of the lumbung to compare against (A).")
    parser.add_argument("--mode", choices=["whole", "stream"], default="whole")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of 400 requests per server.")
    parser.add_argument("--floor", action="store_true", help="Measure the bare relay too.")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lumbung-ab-"))
    ports, pids, procs = start(args.base_src, work, args.floor)
    try:
        import uvloop

        uvloop.run(run(ports, pids, args.mode == "stream", args.rounds))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(20)


if __name__ == "__main__":
    main()
