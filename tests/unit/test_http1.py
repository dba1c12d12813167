"""lumbung's lean HTTP/1.1 client against real sockets on 127.0.0.1: servers that answer in every framing
HTTP/1.1 allows, and servers that misbehave (close idle connections, hang, break the protocol)."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trustme

from lumbung.engines.http1 import ConnectFailed, Pool, ReadTimeout, ResponseBroken

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Upstream:
    """A raw TCP server; counts connections and the requests it read."""

    def __init__(self, answer: Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                if not await self.answer(body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.closed.set()

    async def __aenter__(self) -> Pool:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return Pool(
            f"http://127.0.0.1:{port}/v1",
            {"Authorization": "Bearer k"},
            limit=4,
            connect_timeout=2.0,
            read_timeout=1.0,
        )

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


def _json(body: dict[str, object], extra: bytes = b"") -> bytes:
    data = json.dumps(body).encode()
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n%scontent-length: %d\r\n\r\n%s" % (
        extra,
        len(data),
        data,
    )


async def test_keep_alive_reuses_one_connection_and_sends_the_request_as_given() -> None:
    async def answer(body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(_json({"echo": json.loads(body)}))
        return True

    up = Upstream(answer)
    async with up as pool:
        for i in range(5):
            async with pool.post("/chat/completions", json.dumps({"n": i}).encode()) as response:
                assert response.status == 200
                assert response.headers["content-type"] == "application/json"
                assert json.loads(await response.read()) == {"echo": {"n": i}}
        await pool.close()
    assert up.connections == 1
    first = up.requests[0]
    assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"\r\nauthorization: Bearer k\r\n" in first
    assert b"\r\nhost: 127.0.0.1:" in first


async def test_chunked_and_close_delimited_bodies_arrive_whole() -> None:
    async def chunked(body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in (b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        return True

    async with Upstream(chunked) as pool:
        async with pool.post("/chat/completions", b"{}") as response:
            pieces = [p async for p in response.iter_any()]
        assert b"".join(pieces) == b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"
        assert len(pieces) >= 2  # handed over as they arrive, not at the end
        await pool.close()

    async def until_close(body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nthe whole body")
        return False

    up = Upstream(until_close)
    async with up as pool:
        async with pool.post("/x", b"") as response:
            assert await response.read() == b"the whole body"
        assert not pool.idle  # not reusable: the server closed it
        await pool.close()


async def test_an_idle_connection_the_server_closed_is_replaced_without_an_error() -> None:
    async def once(body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(_json({"ok": True}))
        await writer.drain()
        return False  # closes after each answer, without saying so

    up = Upstream(once)
    async with up as pool:
        for _ in range(3):
            async with pool.post("/x", b"{}") as response:
                assert json.loads(await response.read()) == {"ok": True}
            await asyncio.sleep(0.05)
        await pool.close()
    assert up.connections == 3


async def _refused(answer: Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]) -> None:
    """Sends one request to an upstream answering with ``answer``; what the exchange raises goes on."""
    async with Upstream(answer) as pool:
        try:
            async with pool.post("/x", b"{}"):
                pass
        finally:
            await pool.close()


async def test_a_silent_upstream_times_out_and_a_broken_one_is_an_error() -> None:
    async def silent(body: bytes, writer: asyncio.StreamWriter) -> bool:
        return True  # reads on without answering, until the client gives up and closes

    with pytest.raises(ReadTimeout):
        await _refused(silent)

    async def garbage(body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"SPDY/9 nonsense\r\n\r\n")
        return True

    with pytest.raises(ResponseBroken):
        await _refused(garbage)

    async def cut(body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
        await writer.drain()
        return False

    async with Upstream(cut) as pool:
        async with pool.post("/x", b"{}") as response:
            with pytest.raises(ResponseBroken):
                await response.read()
        await pool.close()

    async def gzip(body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(_json({}, extra=b"content-encoding: gzip\r\n"))
        return True

    with pytest.raises(ResponseBroken, match="content-encoding"):
        await _refused(gzip)


async def test_nothing_listening_is_a_connect_failure() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    pool = Pool(f"http://127.0.0.1:{port}", {}, limit=1, connect_timeout=1.0, read_timeout=1.0)
    with pytest.raises(ConnectFailed):
        async with pool.post("/x", b"{}"):
            pass
    # The slot came back: a second try fails the same way instead of waiting forever.
    with pytest.raises(ConnectFailed):
        await asyncio.wait_for(pool.send("POST", "/x", b"{}"), 2.0)


async def test_leaving_an_answer_early_closes_its_connection_so_the_upstream_stops() -> None:
    async def endless(body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(1000):
            writer.write(b"5\r\nhello\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)
        return True

    up = Upstream(endless)
    async with up as pool:
        async with pool.post("/x", b"{}") as response:
            async for _ in response.iter_any():
                break
        await asyncio.wait_for(up.closed.wait(), 1.0)
        assert not pool.idle
        await pool.close()


async def test_an_answered_exchange_keeps_its_connection_however_it_is_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The caller has the answer (an SSE ``[DONE]``) before the message ends, and leaves by an
    exception (a generator closed by its consumer): the connection is kept once the message ends,
    and closed if it does not end in time."""
    monkeypatch.setattr("lumbung.engines.http1.SETTLE_SECONDS", 0.3)

    def answer_ending_in(delay: float) -> Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]:
        async def answer(body: bytes, writer: asyncio.StreamWriter) -> bool:
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            writer.write(b"e\r\ndata: [DONE]\n\n\r\n")
            await writer.drain()
            await asyncio.sleep(delay)
            writer.write(b"0\r\n\r\n")
            return True

        return answer

    for delay, kept in ((0.05, True), (1.0, False)):
        up = Upstream(answer_ending_in(delay))
        async with up as pool:
            for _ in range(2):
                exchange = pool.post("/x", b"{}")
                with pytest.raises(GeneratorExit):
                    async with exchange as response:
                        async for piece in response.iter_any():
                            assert piece.endswith(b"[DONE]\n\n")
                            exchange.answered()
                            raise GeneratorExit
                await asyncio.sleep(0.5)
                assert len(pool.idle) == (1 if kept else 0)
            assert up.connections == (1 if kept else 2)
            await pool.close()


async def test_a_large_body_is_read_completely_with_flow_control() -> None:
    big = b"x" * (5 << 20)

    async def large(body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(big))
        for i in range(0, len(big), 1 << 16):
            writer.write(big[i : i + (1 << 16)])
            await writer.drain()
        return True

    async with Upstream(large) as pool:
        async with pool.post("/x", b"{}") as response:
            total = 0
            async for piece in response.iter_any():
                total += len(piece)
                await asyncio.sleep(0)  # a slow consumer: the client pauses reading meanwhile
        assert total == len(big)
        await pool.close()


async def test_https_upstreams_are_verified_against_the_trust_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Real providers are HTTPS: the certificate is checked (here against a CA made for the test and
    trusted through SSL_CERT_FILE, as an operator would add a private CA)."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n{}")
            writer.write(_json({"secure": True}))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    untrusted = Pool(f"https://localhost:{port}", {}, limit=1, connect_timeout=2.0, read_timeout=2.0)
    with pytest.raises(ConnectFailed):
        async with untrusted.post("/x", b"{}"):
            pass
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    trusted = Pool(f"https://localhost:{port}", {}, limit=1, connect_timeout=2.0, read_timeout=2.0)
    async with trusted.post("/x", b"{}") as response:
        assert json.loads(await response.read()) == {"secure": True}
    await trusted.close()
    server.close()
