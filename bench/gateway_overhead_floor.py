"""The floor of bench/gateway_overhead.py: the least a Python gateway on lumbung's stack can add. A raw
ASGI app on uvicorn (as `lumbung serve` runs it) that forwards the request body to the mock upstream
through lumbung's own HTTP/1.1 client and relays the answer's bytes: no routing, no validation, no
failover, no logging. What lumbung adds beyond this row is the cost of its own features.

Usage: python bench/gateway_overhead_floor.py PORT UPSTREAM_BASE_URL [http1|aiohttp]

With ``aiohttp`` the same relay uses an aiohttp session instead (keep-alive pool, no cookies, no
decompression): how lumbung chose its client (docs/performance.md).
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

from lumbung.engines.http1 import Pool


def make_app(upstream: str) -> Any:
    pool = Pool(upstream, {}, limit=256, connect_timeout=5.0, read_timeout=30.0)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        parts, more = [], True
        while more:
            message = await receive()
            parts.append(message.get("body", b""))
            more = message.get("more_body", False)
        async with pool.post("/chat/completions", b"".join(parts)) as response:
            kind = response.headers.get("content-type", "application/json").encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [(b"content-type", kind)],
                }
            )
            async for piece in response.iter_any():
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def make_aiohttp_app(upstream: str) -> Any:
    import aiohttp

    url = upstream.rstrip("/") + "/chat/completions"
    session: list[aiohttp.ClientSession] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if not session:
            session.append(
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=256),
                    cookie_jar=aiohttp.DummyCookieJar(),
                    auto_decompress=False,
                )
            )
        parts, more = [], True
        while more:
            message = await receive()
            parts.append(message.get("body", b""))
            more = message.get("more_body", False)
        headers = {"content-type": "application/json"}
        async with session[0].post(url, data=b"".join(parts), headers=headers) as response:
            kind = response.headers.get("content-type", "application/json").encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [(b"content-type", kind)],
                }
            )
            async for piece in response.content.iter_any():
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


if __name__ == "__main__":
    client = sys.argv[3] if len(sys.argv) > 3 else "http1"
    uvicorn.run(
        make_app(sys.argv[2]) if client == "http1" else make_aiohttp_app(sys.argv[2]),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
