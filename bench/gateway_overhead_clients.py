"""Which HTTP client should lumbung's upstream backends use? httpx vs aiohttp vs lumbung's own lean
HTTP/1.1 client (``lumbung.engines.http1``), streaming a chat completion from the fast mock upstream
(bench/gateway_overhead_mock.py) over keep-alive connections.

Prints requests per second and CPU microseconds per request for each, at concurrency 1 and 16.
Run it with the project's Python and the bench extra (aiohttp):
    pip install -e ".[bench]" && python bench/gateway_overhead_clients.py
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

    async with httpx.AsyncClient(
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)
    ) as client:

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


async def with_http1(url: str, concurrency: int) -> None:
    from lumbung.engines.http1 import Pool

    pool = Pool(url.rsplit("/v1/", 1)[0] + "/v1", {}, limit=64, connect_timeout=5.0, read_timeout=30.0)
    body = json.dumps(BODY).encode()

    async def one() -> None:
        async with pool.post("/chat/completions", body) as r:
            async for _ in r.iter_any():
                pass

    try:
        await run(one, concurrency)
    finally:
        await pool.close()


async def run(one: object, concurrency: int) -> None:
    async def worker(n: int) -> None:
        for _ in range(n):
            await one()  # type: ignore[operator]

    await asyncio.gather(*(worker(N // concurrency) for _ in range(concurrency)))


def main() -> None:
    import uvloop

    port = free_port()
    mock = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("gateway_overhead_mock.py")), str(port)]
    )
    time.sleep(1.0)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    results = {}
    try:
        for name, fn in (("httpx", with_httpx), ("aiohttp", with_aiohttp), ("http1", with_http1)):
            for concurrency in (1, 16):
                uvloop.run(fn(url, 1))  # warm
                wall, cpu = time.perf_counter(), time.process_time()
                uvloop.run(fn(url, concurrency))
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                results[f"{name}@{concurrency}"] = (N / wall, cpu / N * 1e6)
                print(
                    f"{name:8} concurrency {concurrency:2}: {N / wall:7.0f} req/s, {cpu / N * 1e6:6.0f} us CPU/request"
                )
    finally:
        mock.terminate()
    for c in (1, 16):
        h, a, o = results[f"httpx@{c}"], results[f"aiohttp@{c}"], results[f"http1@{c}"]
        print(
            f"concurrency {c}: aiohttp/httpx throughput {a[0] / h[0]:.2f}x, CPU per request {h[1] / a[1]:.2f}x less"
        )
        print(
            f"concurrency {c}: http1/aiohttp throughput {o[0] / a[0]:.2f}x, CPU per request {a[1] / o[1]:.2f}x less"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
