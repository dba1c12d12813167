"""Gateway overhead: the same fast mock upstream reached directly, through lumbung (and, with
--before, through another commit of it), and through the LiteLLM proxy, in one run, with open-loop
load at fixed rates.

Prints, for whole and streamed chat completions: p50/p99 latency at a light fixed rate (10 req/s, 300
requests per path in 5-second slices, the paths taking turns so a drifting machine weighs on all
alike) and the latency
each gateway adds over the direct path (and lumbung's over the "floor": a bare relay on the same stack,
bench/gateway_overhead_floor.py), the CPU each server process spends per request, then the
highest rate each sustains (no errors, p50 under 100 ms and p99 under 500 ms: beyond it requests
queue without bound) with the latency added at each rate, and lumbung's ratios to LiteLLM.

    python bench/gateway_overhead.py [--litellm /path/to/litellm] [--before WORKTREE] [--quick]

LiteLLM runs from its own virtualenv outside the repo (docs/performance.md has the recipe); without
it, the LiteLLM rows are skipped. The load generator is a minimal keep-alive HTTP/1.1 client on uvloop
(a general client library would cost more CPU than the gateways under test on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RATES = [25, 50, 75, 100, 150, 200, 300, 400, 600, 800, 1200, 1600, 2400, 3200]
LIGHT_RATE = 10
LIGHT_SLICES = 6  # x LIGHT_SLICE_SECONDS at LIGHT_RATE per path: 300 requests each
LIGHT_SLICE_SECONDS = 5.0
TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Pool:
    """Keep-alive connections to one server; a request takes an idle one or opens one."""

    def __init__(self, port: int, size: int = 64) -> None:
        self.port = port
        self.size = size
        self.opened = 0
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def get(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle.empty() and self.opened < self.size:
            self.opened += 1
            try:
                return await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                self.opened -= 1
                raise
        return await self.idle.get()

    async def close(self) -> None:
        while not self.idle.empty():
            _, w = self.idle.get_nowait()
            w.close()


async def _exchange(pool: Pool, payload: bytes) -> bool:
    conn = await pool.get()
    reader, writer = conn
    try:
        writer.write(payload)
        head = await reader.readuntil(b"\r\n\r\n")
        ok = head[9:12] == b"200"
        lower = head.lower()
        if b"content-length:" in lower:
            n = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
            body = await reader.readexactly(n)
        else:
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                parts.append(await reader.readexactly(size + 2))
                if size == 0:
                    break
            body = b"".join(parts)
        if b"text/event-stream" in lower:
            ok = ok and b"[DONE]" in body and b'"error"' not in body
        pool.idle.put_nowait(conn)
        return ok
    except BaseException:
        writer.close()
        pool.opened -= 1
        raise


@dataclass
class Result:
    rate: int
    sent: int
    errors: int
    p50_ms: float
    p99_ms: float
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def sustained(self) -> bool:
        """Kept up: no errors, and no queue building (p50 under 100 ms, p99 under 500 ms)."""
        return self.errors == 0 and self.p50_ms < 100 and self.p99_ms < 500


async def run_rate(port: int, path: str, body: dict[str, object], rate: int, seconds: float) -> Result:
    data = json.dumps(body).encode()
    payload = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer bench\r\ncontent-length: {len(data)}\r\n\r\n"
    ).encode() + data
    pool = Pool(port)
    latencies: list[float] = []
    errors = 0

    async def one(at: float) -> None:
        nonlocal errors
        try:
            ok = await asyncio.wait_for(_exchange(pool, payload), TIMEOUT)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            ok = False
        if ok:
            latencies.append(time.perf_counter() - at)
        else:
            errors += 1

    # perf_counter, not loop.time(): uvloop's clock ticks in whole milliseconds.
    n = max(1, int(rate * seconds))
    start = time.perf_counter() + 0.05
    tasks = []
    for i in range(n):
        at = start + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(at)))
    await asyncio.gather(*tasks)
    await pool.close()
    return summarize(rate, n, errors, [x * 1000 for x in latencies])


def summarize(rate: int, sent: int, errors: int, latencies_ms: list[float]) -> Result:
    lat = sorted(latencies_ms) or [TIMEOUT * 1000]
    return Result(
        rate, sent, errors, statistics.median(lat), lat[min(len(lat) - 1, int(len(lat) * 0.99))], lat
    )


def wait_http(port: int, path: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2)
            return
        except Exception:
            time.sleep(0.2)
    raise TimeoutError(f"nothing answered on port {port}")


def start_all(
    work: Path, litellm: str | None, before: str | None = None
) -> tuple[dict[str, int], dict[str, int], list[subprocess.Popen[bytes]]]:
    procs = []
    mock = free_port()
    log = (work / "mock.log").open("wb")
    procs.append(
        subprocess.Popen(
            [sys.executable, str(ROOT / "bench/gateway_overhead_mock.py"), str(mock)], stdout=log, stderr=log
        )
    )
    ports = {"direct": mock}
    floor = free_port()
    log = (work / "floor.log").open("wb")
    procs.append(
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench/gateway_overhead_floor.py"),
                str(floor),
                f"http://127.0.0.1:{mock}/v1",
            ],
            stdout=log,
            stderr=log,
        )
    )
    ports["floor"] = floor
    cfg = {
        "serve_default_model": False,
        "providers": [
            {
                "name": "mock",
                "kind": "openai",
                "base_url": f"http://127.0.0.1:{mock}/v1",
                "jurisdiction": "local",
            }
        ],
        "routes": [{"name": "bench", "tiers": [["mock/bench"]]}],
    }
    (work / "lumbung.yaml").write_text(json.dumps(cfg))
    servers = {**({"before": before} if before else {}), "lumbung": None}
    for name, source in servers.items():
        port = free_port()
        env = {**os.environ, "LUMBUNG_HOME": str(work / f"home-{name}")}
        python = sys.executable
        if source is not None:  # another commit's tree: its own venv, else its source first on the path
            own = Path(source) / ".venv/bin/python"
            if own.exists():
                python = str(own)
            else:
                env["PYTHONPATH"] = str(Path(source) / "src")
        log = (work / f"{name}.log").open("wb")
        command = [python, "-m", "lumbung", "serve", "--port", str(port)]
        command += ["--config", str(work / "lumbung.yaml")]
        procs.append(subprocess.Popen(command, stdout=log, stderr=log, env=env))
        ports[name] = port
    if litellm:
        lit = free_port()
        (work / "litellm.yaml").write_text(
            "model_list:\n  - model_name: bench\n    litellm_params:\n      model: openai/bench\n"
            f"      api_base: http://127.0.0.1:{mock}/v1\n      api_key: none\n"
        )
        log = (work / "litellm.log").open("wb")
        procs.append(
            subprocess.Popen(
                [
                    litellm,
                    "--config",
                    str(work / "litellm.yaml"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(lit),
                    "--num_workers",
                    "1",
                ],
                stdout=log,
                stderr=log,
                env={**os.environ, "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true"},
            )
        )
        ports["litellm"] = lit
    by_name = dict(zip(ports, procs, strict=True))
    wait_http(floor, "/", by_name["floor"])
    for name in servers:
        wait_http(ports[name], "/health", by_name[name])
    if litellm:
        wait_http(ports["litellm"], "/health/liveliness", by_name["litellm"], timeout=300)
    pids = {name: p.pid for name, p in by_name.items()}
    return ports, pids, procs


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def settle(port: int, body: dict[str, object]) -> None:
    """Wait until a server has drained whatever an overloaded step queued up."""
    for _ in range(60):
        r = await run_rate(port, "/v1/chat/completions", body, 10, 0.5)
        if r.errors == 0 and r.p99_ms < 50:
            return
        await asyncio.sleep(1.0)


async def light_interleaved(
    ports: dict[str, int], pids: dict[str, int], body: dict[str, object]
) -> dict[str, tuple[Result, float]]:
    """The light rate, LIGHT_SLICES slices of LIGHT_SLICE_SECONDS per path, the paths taking turns: a
    machine whose speed drifts weighs on every path alike (one 10-second step each, one after
    another, swung by +-0.5 ms between runs on the 2-core VM). Returns the merged result and the
    server's CPU microseconds per request, per path."""
    merged: dict[str, list[float]] = {name: [] for name in ports}
    sent = dict.fromkeys(ports, 0)
    errors = dict.fromkeys(ports, 0)
    cpu = dict.fromkeys(ports, 0.0)
    for _ in range(LIGHT_SLICES):
        for name, port in ports.items():
            before = cpu_seconds(pids[name])
            r = await run_rate(port, "/v1/chat/completions", body, LIGHT_RATE, LIGHT_SLICE_SECONDS)
            cpu[name] += cpu_seconds(pids[name]) - before
            merged[name] += r.latencies_ms
            sent[name] += r.sent
            errors[name] += r.errors
    return {
        name: (summarize(LIGHT_RATE, sent[name], errors[name], merged[name]), cpu[name] / sent[name] * 1e6)
        for name in ports
    }


async def bench(
    ports: dict[str, int], pids: dict[str, int], seconds: float, quick: bool
) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for stream in (False, True):
        body: dict[str, object] = {
            "model": "bench",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": stream,
        }
        mode = "stream" if stream else "whole"
        for port in ports.values():
            await run_rate(port, "/v1/chat/completions", body, 20, 3.0)  # warm up: imports, pools
            await settle(port, body)
        lights = await light_interleaved(ports, pids, body)
        for name, port in ports.items():
            light, cpu_us = lights[name]
            best = 0
            ladder = []
            for rate in RATES[:6] if quick else RATES:
                r = await run_rate(port, "/v1/chat/completions", body, rate, seconds)
                ladder.append(r)
                print(
                    f"  {mode:6} {name:8} {rate:5}/s  errors {r.errors:4}  p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:8.2f} ms",
                    file=sys.stderr,
                )
                if not r.sustained:
                    break
                best = rate
                await asyncio.sleep(0.5)
            await settle(port, body)
            out[f"{mode}/{name}"] = {"light": light, "sustained": best, "ladder": ladder, "cpu_us": cpu_us}
    return out


def report(results: dict[str, dict[str, object]], names: list[str]) -> None:
    print(
        f"| mode | path | p50 @ {LIGHT_RATE}/s | p99 @ {LIGHT_RATE}/s | added p50 | added p99 | CPU per request "
        "| sustained rate |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for mode in ("whole", "stream"):
        direct = results[f"{mode}/direct"]["light"]
        assert isinstance(direct, Result)
        for name in names:
            r = results[f"{mode}/{name}"]
            light = r["light"]
            assert isinstance(light, Result)
            added = "-" if name == "direct" else f"{light.p50_ms - direct.p50_ms:+.2f} ms"
            added99 = "-" if name == "direct" else f"{light.p99_ms - direct.p99_ms:+.2f} ms"
            print(
                f"| {mode} | {name} | {light.p50_ms:.2f} ms | {light.p99_ms:.2f} ms | {added} | {added99} | "
                f"{r['cpu_us']:.0f} us | {r['sustained']} req/s |"
            )
    print(
        "\nAdded p50 by offered rate (each path's p50 minus the direct path's at the same rate; "
        "'-' where a path did not sustain that rate):\n"
    )
    shown = [n for n in names if n != "direct"]
    print("| mode | rate | " + " | ".join(shown) + " |")
    print("|---|---|" + "---|" * len(shown))
    for mode in ("whole", "stream"):
        direct_ladder = {r.rate: r for r in results[f"{mode}/direct"]["ladder"]}  # type: ignore[attr-defined]
        for rate, base in direct_ladder.items():
            cells = []
            for name in shown:
                mine = {r.rate: r for r in results[f"{mode}/{name}"]["ladder"]}  # type: ignore[attr-defined]
                r = mine.get(rate)
                cells.append(f"{r.p50_ms - base.p50_ms:+.2f} ms" if r is not None and r.sustained else "-")
            if any(c != "-" for c in cells):
                print(f"| {mode} | {rate}/s | " + " | ".join(cells) + " |")
    for mode in ("whole", "stream"):
        floor, lum_light = results[f"{mode}/floor"]["light"], results[f"{mode}/lumbung"]["light"]
        assert isinstance(floor, Result) and isinstance(lum_light, Result)
        print(
            f"\n{mode}: lumbung adds {lum_light.p50_ms - floor.p50_ms:+.2f} ms p50 over the floor "
            "(a bare uvicorn + lumbung.engines.http1 relay)"
        )
    if "before" in names:
        for mode in ("whole", "stream"):
            now, then = results[f"{mode}/lumbung"]["light"], results[f"{mode}/before"]["light"]
            assert isinstance(now, Result) and isinstance(then, Result)
            now_cpu, then_cpu = results[f"{mode}/lumbung"]["cpu_us"], results[f"{mode}/before"]["cpu_us"]
            print(
                f"\n{mode}: this tree vs before: p50 {now.p50_ms - then.p50_ms:+.2f} ms, "
                f"CPU per request {now_cpu:.0f} vs {then_cpu:.0f} us, sustained "
                f"{results[f'{mode}/lumbung']['sustained']} vs {results[f'{mode}/before']['sustained']} req/s"
            )
    if "litellm" in names:
        ours = [n for n in ("before", "lumbung") if n in names]
        for mode, name in ((m, n) for m in ("whole", "stream") for n in ours):
            lum, lit = results[f"{mode}/{name}"]["sustained"], results[f"{mode}/litellm"]["sustained"]
            lum_cpu, lit_cpu = results[f"{mode}/{name}"]["cpu_us"], results[f"{mode}/litellm"]["cpu_us"]
            assert isinstance(lum, int) and isinstance(lit, int)
            assert isinstance(lum_cpu, float) and isinstance(lit_cpu, float)
            ratio = f"{lum / lit:.1f}x" if lit else "inf"
            print(
                f"\n{mode}: {name} sustains {ratio} LiteLLM's rate ({lum} vs {lit} req/s) and spends "
                f"{lit_cpu / lum_cpu:.1f}x less CPU per request"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--litellm", default=shutil.which("litellm") or "/work/.bench-cache/litellm-venv/bin/litellm"
    )
    parser.add_argument(
        "--before",
        default=None,
        help="Another commit's worktree, served beside this one as 'before' (same config, same run) by "
        "its own .venv/bin/python when it has one (`./scripts/setup` there), else by this Python with "
        "its src/ first on the path.",
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="Seconds of load per rate step.")
    parser.add_argument("--quick", action="store_true", help="Fewer rate steps.")
    args = parser.parse_args()
    litellm = args.litellm if args.litellm and Path(args.litellm).exists() else None
    work = Path(tempfile.mkdtemp(prefix="lumbung-bench-"))
    ports, pids, procs = start_all(work, litellm, args.before)
    try:
        import uvloop

        print(f"load average before: {os.getloadavg()}", file=sys.stderr)
        results = uvloop.run(bench(ports, pids, args.seconds, args.quick))
        print(f"load average after: {os.getloadavg()}", file=sys.stderr)
        report(results, list(ports))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        print(f"(logs in {work})", file=sys.stderr)


if __name__ == "__main__":
    main()
