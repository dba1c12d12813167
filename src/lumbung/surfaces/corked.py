"""uvicorn's HTTP/1.1 protocol with its writes gathered per event-loop turn.

uvicorn writes a response's head and each body message to the socket as it is sent: a whole answer is
two system calls, and a stream relayed from a provider whose events arrived together is one per event.
On loopback and on a LAN each write also wakes the client, which then reads part of the answer and
sleeps again. Here the writes made in one turn of the event loop go out together at the start of the
next turn (as a web server's output buffer or TCP_CORK would gather them): nothing waits longer than
the turn it was written in, an answer the upstream delivered at once leaves in one write, and tokens a
model produces one at a time still leave one at a time. Measured in docs/performance.md ("Gateway
overhead").

Flow control is kept: once the gathered bytes pass ``FLUSH_AT`` they are written at once, so the real
transport's high-water mark pauses a fast producer as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

FLUSH_AT = 64 * 1024


class CorkedTransport:
    """A transport whose ``write`` is gathered until the loop's next turn (or ``FLUSH_AT`` bytes)."""

    __slots__ = ("_loop", "_parts", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._parts: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._parts:
            self._loop.call_soon(self.flush)
        self._parts.append(bytes(data))
        self._size += len(data)
        if self._size >= FLUSH_AT:
            self.flush()

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Writes what is gathered (a no-op when nothing is, or when the connection is closing)."""
        if not self._parts:
            return
        parts, self._parts, self._size = self._parts, [], 0
        if not self._transport.is_closing():
            self._transport.write(parts[0] if len(parts) == 1 else b"".join(parts))

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._size

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CorkedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a ``CorkedTransport``."""

    def connection_made(self, transport: Any) -> None:  # uvloop's transport is no asyncio.Transport
        corked: Any = CorkedTransport(transport, self.loop)
        super().connection_made(corked)
