"""Which HTTP client should lumbung's upstream backends use? httpx vs aiohttp, streaming a chat
completion from the fast mock upstream (bench/gateway_overhead_mock.py) over keep-alive connections.

Prints requests per second and CPU microseconds per request for each, at concurrency 1 and 16.
Run it with a Python that has both installed:  python bench/gateway_overhead_clients.py
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
N = 3000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def with_httpx(url: str, concurrency: int) -> None:
    import httpx

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)) as client:

        async def one() -> None:
            async with client.stream("POST", url, json=BODY) as r:
                async for _ in r.aiter_raw():
                    pass

        await run(one, concurrency)


async def with_aiohttp(url: str, concurrency: int) -> None:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:

        async def one() -> None:
            async with session.post(url, json=BODY) as r:
                async for _ in r.content.iter_any():
                    pass

        await run(one, concurrency)


async def run(one: object, concurrency: int) -> None:
    async def worker(n: int) -> None:
        for _ in range(n):
            await one()  # type: ignore[operator]

    await asyncio.gather(*(worker(N // concurrency) for _ in range(concurrency)))


def main() -> None:
    import uvloop

    port = free_port()
    mock = subprocess.Popen([sys.executable, str(Path(__file__).with_name("gateway_overhead_mock.py")), str(port)])
    time.sleep(1.0)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    results = {}
    try:
        for name, fn in (("httpx", with_httpx), ("aiohttp", with_aiohttp)):
            for concurrency in (1, 16):
                uvloop.run(fn(url, 1))  # warm
                wall, cpu = time.perf_counter(), time.process_time()
                uvloop.run(fn(url, concurrency))
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                results[f"{name}@{concurrency}"] = (N / wall, cpu / N * 1e6)
                print(f"{name:8} concurrency {concurrency:2}: {N / wall:7.0f} req/s, {cpu / N * 1e6:6.0f} us CPU/request")
    finally:
        mock.terminate()
    for c in (1, 16):
        h, a = results[f"httpx@{c}"], results[f"aiohttp@{c}"]
        print(f"concurrency {c}: aiohttp/httpx throughput {a[0] / h[0]:.2f}x, CPU per request {h[1] / a[1]:.2f}x less")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
