"""Drive an ASGI app in process, as uvicorn would, through an httpx client.

httpx's own ``ASGITransport`` runs the app to its end before returning the response, so a stream that
hangs never returns and a client cannot hang up halfway. ``StreamingTransport`` runs the app in a task
of its own: the response returns at ``http.response.start``, its body arrives as the app sends it, and
closing the response early is a hang-up (``http.disconnect``), as a client closing its socket is to
uvicorn. SDK clients take it too (``http_client=httpx.AsyncClient(transport=...)``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.types import ASGIApp, Message

# What uvicorn's httptools protocol announces (Starlette watches for a hang-up below 2.4).
ASGI = {"version": "3.0", "spec_version": "2.3"}


class _Body(httpx.AsyncByteStream):
    def __init__(self, exchange: _Exchange) -> None:
        self.exchange = exchange

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            piece = await self.exchange.body.get()
            if piece is None:
                break
            yield piece
        await self.exchange.finished()

    async def aclose(self) -> None:
        await self.exchange.hang_up()


class _Exchange:
    """One request: the app's task, the body it sends, and whether the client is still there."""

    def __init__(self, app: ASGIApp, scope: dict[str, Any], body: bytes) -> None:
        self.request_body: bytes | None = body
        self.started: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.body: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.gone = asyncio.Event()
        self.complete = False
        self.task = asyncio.ensure_future(app(scope, self.receive, self.send))
        self.task.add_done_callback(self._ended)

    async def receive(self) -> Message:
        if self.request_body is not None:
            body, self.request_body = self.request_body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.gone.is_set():
            return  # uvicorn drops what is sent after a hang-up (spec 2.3)
        if message["type"] == "http.response.start":
            if not self.started.done():  # done: the client gave up waiting (a cancelled request)
                self.started.set_result(message)
        elif message["type"] == "http.response.body":
            if message.get("body"):
                self.body.put_nowait(message["body"])
            if not message.get("more_body", False):
                self.complete = True
                self.body.put_nowait(None)

    def _ended(self, task: asyncio.Future[None]) -> None:
        if not self.started.done():
            error = task.exception() if not task.cancelled() else None
            self.started.set_exception(error or RuntimeError("the app ended without answering"))
        elif not self.complete:
            self.body.put_nowait(None)

    async def finished(self) -> None:
        """The whole body arrived: the app's task ends now (after it uvicorn reports a disconnect too)."""
        self.gone.set()
        await self.task
        await asyncio.sleep(0)  # what the app left for the loop's next turn (its record's close) runs

    async def hang_up(self) -> None:
        self.gone.set()
        with contextlib.suppress(Exception):
            await self.task
        await asyncio.sleep(0)


class StreamingTransport(httpx.AsyncBaseTransport):
    def __init__(self, app: ASGIApp, client: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        self.app = app
        self.client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = b"".join([part async for part in request.stream])  # type: ignore[union-attr]
        scope = {
            "type": "http",
            "asgi": ASGI,
            "http_version": "1.1",
            "method": request.method,
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "client": self.client,
            "server": (request.url.host, request.url.port or 80),
            "state": {},
        }
        exchange = _Exchange(self.app, scope, body)
        try:
            start = await exchange.started
        except asyncio.CancelledError:  # the caller gave up waiting: a hang-up before the answer
            await exchange.hang_up()
            raise
        return httpx.Response(start["status"], headers=start.get("headers", []), stream=_Body(exchange))


@contextlib.asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Runs the app's start-up before and its shutdown after the block, as uvicorn does."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": ASGI, "state": {}}, inbox.get, outbox.put))

    async def step(kind: str) -> None:
        await inbox.put({"type": f"lifespan.{kind}"})
        reply = await outbox.get()
        if reply["type"] != f"lifespan.{kind}.complete":
            raise RuntimeError(f"lifespan {kind} failed: {reply.get('message')}")

    await step("startup")
    try:
        yield
    finally:
        await step("shutdown")
        await task
