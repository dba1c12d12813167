"""Taking a provider away on purpose, for ``lumbung drill``.

``FaultProxy`` is an HTTP proxy on 127.0.0.1 in front of one remote provider: it forwards requests
untouched (``pass``) or fails them the way real providers fail: a region cut-off (403
``unsupported_country_region_territory``), a hang (never answers), 500s, or a slow trickle.
``FaultyBackend`` does the same for the in-process engine, which has no wire to cut.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any, Literal

import httpx

from lumbung.engines.base import Backend, Embeddings
from lumbung.errors import ProviderCutOff, UpstreamError
from lumbung.types import ChatRequest, Chunk, CompletionRequest, EmbeddingInputs, ModelInfo

Fault = Literal["pass", "cut_off", "hang", "error_500", "slow"]
FAULTS: tuple[Fault, ...] = ("cut_off", "hang", "error_500", "slow")
SLOW_DELAY = 0.25  # seconds added before each piece of a slow answer
_HOP = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "te", "upgrade"}
CUT_OFF_BODY = {
    "error": {
        "code": "unsupported_country_region_territory",
        "message": "Country, region, or territory not supported",
        "type": "request_forbidden",
    }
}


class FaultProxy:
    """Forwards ``http://127.0.0.1:PORT/...`` to ``target`` + the same path, misbehaving on command."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.fault: Fault = "pass"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=10.0))

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._client.aclose()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, httpx.HTTPError):
            pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = [(k.strip(), v.strip()) for k, _, v in (x.partition(":") for x in lines[1:] if x)]
        length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
        body = await reader.readexactly(length)
        fault = self.fault
        if fault == "hang":
            while await reader.read(4096):  # hold the connection until the caller gives up
                pass
            return False
        if fault in ("cut_off", "error_500"):
            status = 403 if fault == "cut_off" else 500
            data = json.dumps(CUT_OFF_BODY if fault == "cut_off" else {"error": {"message": "drill: 500"}})
            self._write_head(writer, status, [("content-type", "application/json")], len(data))
            writer.write(data.encode())
            await writer.drain()
            return True
        forward = [(k, v) for k, v in headers if k.lower() not in _HOP]
        request = self._client.build_request(method, self.target + path, headers=forward, content=body)
        response = await self._client.send(request, stream=True)
        try:
            out = [(k, v) for k, v in response.headers.items() if k.lower() not in _HOP]
            self._write_head(writer, response.status_code, out, None)
            async for piece in response.aiter_raw():
                if fault == "slow":
                    await asyncio.sleep(SLOW_DELAY)
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        finally:
            await response.aclose()
        return True

    @staticmethod
    def _write_head(
        writer: asyncio.StreamWriter, status: int, headers: list[tuple[str, str]], length: int | None
    ) -> None:
        framing = ("content-length", str(length)) if length is not None else ("transfer-encoding", "chunked")
        lines = [f"HTTP/1.1 {status} Status", *(f"{k}: {v}" for k, v in [*headers, framing])]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


class FaultyBackend:
    """The in-process engine, with the same faults as ``FaultProxy``."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.fault: Fault = "pass"

    def models(self) -> list[ModelInfo]:
        return self.inner.models()

    async def stream(self, request: ChatRequest | CompletionRequest) -> AsyncGenerator[Chunk, None]:
        fault = self.fault
        if fault == "cut_off":
            raise ProviderCutOff(json.dumps(CUT_OFF_BODY))
        if fault == "error_500":
            raise UpstreamError("drill: 500")
        if fault == "hang":
            await asyncio.sleep(3600)
        inner = self.inner.stream(request)
        try:
            async for chunk in inner:
                if fault == "slow":
                    await asyncio.sleep(SLOW_DELAY)
                yield chunk
        finally:
            await inner.aclose()

    async def embed(self, model: str, inputs: EmbeddingInputs) -> Embeddings:
        return await self.inner.embed(model, inputs)

    async def count_tokens(self, request: ChatRequest | CompletionRequest) -> int:
        return await self.inner.count_tokens(request)

    async def health(self) -> bool:
        return self.fault == "pass" and await self.inner.health()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # get(), close() of the local engine
