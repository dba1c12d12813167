"""surfaces/corked.py: writes of one event-loop turn leave together, nothing waits past its turn."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import uvicorn

from lumbung.surfaces.corked import FLUSH_AT, CorkedHttpToolsProtocol, CorkedTransport
from tests.support.server import free_port


class Recorder:
    """Stands in for the socket's transport: records each write it is given."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def corked() -> tuple[CorkedTransport, Recorder]:
    inner = Recorder()
    transport: Any = inner
    return CorkedTransport(transport, asyncio.get_running_loop()), inner


async def test_writes_of_one_turn_leave_as_one_at_the_next() -> None:
    cork, inner = corked()
    cork.write(b"head ")
    cork.write(b"")
    cork.writelines([b"body", b"!"])
    assert inner.writes == [] and cork.get_write_buffer_size() == 10
    await asyncio.sleep(0)
    assert inner.writes == [b"head body!"]
    cork.write(b"next")
    await asyncio.sleep(0)
    assert inner.writes == [b"head body!", b"next"]


async def test_a_large_write_leaves_at_once_so_flow_control_still_sees_it() -> None:
    cork, inner = corked()
    cork.write(b"a")
    cork.write(b"b" * FLUSH_AT)
    assert inner.writes == [b"a" + b"b" * FLUSH_AT]
    await asyncio.sleep(0)
    assert len(inner.writes) == 1


async def test_close_sends_what_is_gathered_first_and_a_closing_transport_gets_nothing() -> None:
    cork, inner = corked()
    cork.write(b"last")
    cork.close()
    assert inner.writes == [b"last"] and inner.closing
    cork.write(b"late")
    await asyncio.sleep(0)
    assert inner.writes == [b"last"]
    assert cork.get_extra_info("peername") == "info:peername"


PIECES = 1024
SENT = [0]  # pieces of /big the app has handed to the server


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    if scope["path"] == "/slow":  # a token, a pause, a token: the first must not wait for the second
        await send({"type": "http.response.body", "body": b"first|", "more_body": True})
        await asyncio.sleep(0.5)
        await send({"type": "http.response.body", "body": b"second", "more_body": False})
        return
    for _ in range(PIECES):  # 64 MiB, yielding only when flow control pauses: nothing may be lost
        await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
        SENT[0] += 1
    await send({"type": "http.response.body", "body": b"end", "more_body": False})


@pytest.fixture
async def server() -> Any:
    port = free_port()
    config = uvicorn.Config(
        _app, host="127.0.0.1", port=port, http=CorkedHttpToolsProtocol, log_level="error"
    )
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    while not srv.started:
        await asyncio.sleep(0.01)
    yield port
    srv.should_exit = True
    await task


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> tuple[bytes, list[float]]:
    writer.write(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    body, stamps = b"", list[float]()
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return body, stamps
        body += chunk[:-2]
        stamps.append(time.monotonic())


async def test_a_real_server_streams_without_delay_and_keeps_flow_control(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    try:
        started = time.monotonic()
        body, stamps = await _get(reader, writer, "/slow")
        assert body == b"first|second"
        assert stamps[0] - started < 0.4 <= stamps[-1] - started
        SENT[0] = 0
        writer.write(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
        await asyncio.sleep(0.5)  # not reading: flow control must have paused the app long before 64 MiB
        assert 0 < SENT[0] < PIECES // 2
        await reader.readuntil(b"\r\n\r\n")
        size = 0
        while (n := int((await reader.readuntil(b"\r\n")).strip(), 16)) != 0:  # same connection: keep-alive
            size += len(await reader.readexactly(n + 2)) - 2
        await reader.readexactly(2)
        assert size == 65536 * PIECES + 3
    finally:
        writer.close()
