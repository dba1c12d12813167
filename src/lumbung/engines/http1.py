"""A lean keep-alive HTTP/1.1 client for the OpenAI-compatible upstreams: one request, one write; the
answer parsed by httptools (llhttp, the parser uvicorn already uses), its body handed over as the
network delivers it.

Why not aiohttp: streaming a chat completion from the gateway bench's mock upstream, aiohttp spends
357 us of CPU per request on one connection and 325 us at 16 concurrent on the 2-core development
machine; this client 116 us and 60 us (bench/gateway_overhead_clients.py, docs/performance.md).
What it leaves out on purpose: redirects, cookies, proxies from the environment
and compressed answers (no ``Accept-Encoding`` is sent; an encoded answer is an error).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import cast
from urllib.parse import urlsplit

import httptools

_PAUSE_AT = 1 << 20  # stop reading from the socket while this much body waits for its consumer
SETTLE_SECONDS = 1.0  # how long an answered exchange may take to end its message and be reused


class ConnectFailed(ConnectionError):
    """The upstream could not be reached."""


class ConnectTimeout(TimeoutError):
    """Connecting took longer than the provider's connect timeout."""


class ResponseBroken(ConnectionError):
    """The connection failed, or the upstream broke HTTP, before the answer was complete."""


class ReadTimeout(TimeoutError):
    """No data from the upstream within the read timeout."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; carries one exchange at a time."""

    def __init__(self, read_timeout: float) -> None:
        self.read_timeout = read_timeout
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.keep_alive = False
        self.complete = False
        self.received = False
        self.error: BaseException | None = None
        self.body: list[bytes] = []
        self.buffered = 0
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ResponseBroken(f"invalid HTTP from upstream: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.headers_done and not self.complete and not self._framed():
            self.on_message_complete()  # a body delimited by the connection's end (HTTP/1.0 style)
        elif not self.complete:
            self._fail(ResponseBroken("connection lost before the answer was complete"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()  # llhttp forgets it once the message ends
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > _PAUSE_AT and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    # the exchange
    def _framed(self) -> bool:
        return "content-length" in self.headers or "chunked" in self.headers.get("transfer-encoding", "")

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self) -> None:
        """Until something new: headers, body, the end, or a failure (a read timeout included)."""
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        timer = loop.call_later(self.read_timeout, self._timed_out)
        try:
            await self.waiter
        finally:
            timer.cancel()
            self.waiter = None

    def _timed_out(self) -> None:
        self._fail(ReadTimeout(f"no data within {self.read_timeout:g} s"))
        self.close()

    def take(self) -> bytes:
        data = b"".join(self.body) if len(self.body) != 1 else self.body[0]
        self.body.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def reusable(self) -> bool:
        return self.complete and self.error is None and not self.closed and self.keep_alive

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Response:
    """An answer being received; read it with ``read()`` or ``iter_any()``."""

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self.status = conn.status
        self.headers: Mapping[str, str] = conn.headers

    async def iter_any(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            if conn.body:
                yield conn.take()
                continue
            if conn.complete:
                return
            if conn.error is not None:
                raise conn.error
            await conn.wait()

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self.iter_any()])


class Exchange:
    """``async with pool.post(...) as response``: the connection goes back to the pool only when the
    answer was read to its end; otherwise it is closed, which also tells the upstream to stop.

    A caller that has all it needs before the message's last bytes (an SSE stream's ``[DONE]``) says
    so with ``answered()``: the connection is then kept however the block is left (a generator
    closed by its consumer at its last item leaves it with ``GeneratorExit``), once the upstream
    ends the message, which is waited for in the background for at most ``SETTLE_SECONDS``."""

    def __init__(self, pool: Pool, method: str, path: str, body: bytes) -> None:
        self.pool, self.method, self.path, self.body = pool, method, path, body
        self.conn: _Connection | None = None
        self._answered = False

    def answered(self) -> None:
        self._answered = True

    async def __aenter__(self) -> Response:
        self.conn = await self.pool.send(self.method, self.path, self.body)
        return Response(self.conn)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if conn.reusable() and (kind is None or self._answered):
            self.pool.release(conn, keep=True)
        elif self._answered and conn.error is None and not conn.closed and conn.keep_alive:
            self.pool.settle(conn)
        else:
            self.pool.release(conn, keep=False)


class Pool:
    """Keep-alive connections to one origin (``base_url``'s scheme, host and port), at most
    ``limit`` at once; idle ones older than ``keepalive`` seconds are closed rather than reused.
    ``read_timeout`` bounds each wait for data; the gateway enforces first-token and idle limits too."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        limit: int,
        connect_timeout: float,
        read_timeout: float,
        keepalive: float = 60.0,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if url.scheme == "https" else None
        self.prefix = url.path.rstrip("/")
        host = url.netloc.rpartition("@")[2]
        fixed = {"host": host, "user-agent": "lumbung", **{k.lower(): v for k, v in headers.items()}}
        self.head = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keepalive = keepalive
        self.slots = asyncio.Semaphore(limit) if limit > 0 else None
        self.idle: list[_Connection] = []
        self.open: set[_Connection] = set()
        self._settling: set[asyncio.Task[None]] = set()

    def post(self, path: str, body: bytes) -> Exchange:
        return Exchange(self, "POST", path, body)

    def get(self, path: str) -> Exchange:
        return Exchange(self, "GET", path, b"")

    async def send(self, method: str, path: str, body: bytes) -> _Connection:
        """Writes the request and waits for the answer's headers; the caller then owns the connection
        (and a slot) until ``release``."""
        if self.slots is not None:
            await self.slots.acquire()
        request = b"%s %s HTTP/1.1\r\n%scontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
            method.encode(),
            (self.prefix + path).encode(),
            self.head,
            len(body),
            body,
        )
        conn: _Connection | None = None
        try:
            for attempt in (1, 2):
                found = self._idle()
                conn, reused = found if found else (await self._connect(), False)
                conn._reset()
                assert conn.transport is not None
                conn.transport.write(request)
                while not conn.headers_done and conn.error is None:
                    await conn.wait()
                if conn.error is None:
                    encoding = conn.headers.get("content-encoding", "identity")
                    if encoding != "identity":
                        raise ResponseBroken(f"unsupported content-encoding {encoding!r}")
                    return conn
                # An idle connection the upstream closed as we reused it: the request was not read.
                if reused and not conn.received and attempt == 1:
                    self._drop(conn)
                    continue
                raise conn.error
            raise AssertionError("unreachable")
        except BaseException:
            if conn is not None:
                self._drop(conn)
            if self.slots is not None:
                self.slots.release()
            raise

    def _drop(self, conn: _Connection) -> None:
        conn.close()
        self.open.discard(conn)

    def _idle(self) -> tuple[_Connection, bool] | None:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive:
                return conn, True
            self._drop(conn)
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self.read_timeout),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                )
        except TimeoutError as exc:
            raise ConnectTimeout(f"connect to {self.host}:{self.port} timed out") from exc
        except OSError as exc:
            raise ConnectFailed(exc.strerror or str(exc)) from exc
        self.open.add(conn)
        return conn

    def release(self, conn: _Connection, *, keep: bool) -> None:
        if keep:
            conn.idle_since = time.monotonic()
            self.idle.append(conn)
        else:
            self._drop(conn)
        if self.slots is not None:
            self.slots.release()

    def settle(self, conn: _Connection) -> None:
        """Release ``conn`` once its message has ended (the rest of its body is discarded), or close it."""
        task = asyncio.ensure_future(self._settle(conn))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(self, conn: _Connection) -> None:
        end = time.monotonic() + SETTLE_SECONDS
        try:
            while not conn.complete and conn.error is None and time.monotonic() < end:
                conn.take()
                conn.read_timeout = max(0.001, end - time.monotonic())
                await conn.wait()
        finally:
            conn.read_timeout = self.read_timeout
            self.release(conn, keep=conn.reusable())

    async def close(self) -> None:
        for conn in list(self.open):
            conn.close()
        self.open.clear()
        self.idle.clear()
