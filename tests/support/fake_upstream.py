"""A fake upstream provider on 127.0.0.1: real HTTP/1.1 (keep-alive, chunked SSE) speaking the OpenAI
Chat Completions and Anthropic Messages APIs, that misbehaves on command.

It stands in for remote providers, which cannot exist here. ``mode`` picks the misbehaviour for the
next requests; everything it saw is recorded (requests, disconnects) so tests can check what reached it.
Hand-written on asyncio streams rather than a framework because it must do what frameworks prevent:
hang before headers, reset a connection mid-stream, send invalid UTF-8.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

MODES = (
    "ok",
    "hang_before_headers",
    "hang_after_headers",
    "reset_after",  # k content chunks, then a TCP reset
    "slow",  # each chunk after `delay` seconds
    "stall_after",  # k content chunks, then silence on an open connection
    "429",  # Retry-After: `retry_after` unless None
    "500",
    "403_region",
    "error_event",  # an in-band error event before any content
    "error_after",  # k content chunks, then an in-band error event
    "invalid_utf8",
)


def ev(kind: str, data: dict[str, Any]) -> bytes:
    """One Anthropic stream event."""
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


def _message_start(model: Any) -> bytes:
    """An Anthropic stream's first event."""
    message = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": model,
        "usage": {"input_tokens": 5, "output_tokens": 1},
    }
    return ev("message_start", {"message": message})


def _message_end(stop_reason: str, output_tokens: int) -> list[bytes]:
    """An Anthropic stream's last events, closing its one content block."""
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    return [
        ev("content_block_stop", {"index": 0}),
        ev("message_delta", {"delta": delta, "usage": {"output_tokens": output_tokens}}),
        ev("message_stop", {}),
    ]


def _chunk(model: Any, delta: dict[str, Any], finish: str | None, usage: Any) -> bytes:
    """One ``chat.completion.chunk`` event (a usage chunk has no choices)."""
    choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]
    obj = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": choices,
        "usage": usage,
    }
    return f"data: {json.dumps(obj)}\n\n".encode()


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    raw: bytes = b""  # the body's bytes as they arrived


@dataclass
class FakeUpstream:
    name: str = "fake"
    mode: str = "ok"
    words: int = 6
    k: int = 2
    delay: float = 0.2
    retry_after: float | None = 1.0
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    disconnects: list[float] = field(default_factory=list)
    completed: int = 0
    connections: int = 0  # TCP connections accepted (keep-alive reuse shows as few)
    # A scripted agent turn: with tools offered, a call of ``agent_tool`` with ``agent_arguments``;
    # once a tool's result is in the conversation, text quoting it (see ``tool_result``).
    agent_tool: str | None = None
    agent_arguments: dict[str, Any] = field(default_factory=dict)
    # As a vLLM server: GET /health and GET /metrics (Prometheus text with vLLM's metric names).
    # ``running`` None: the answers it is sending right now. ``metrics_mode``: ok, garbage (not
    # Prometheus text), foreign (Prometheus text without vLLM's gauges), 500, hang.
    running: int | None = None
    waiting: int = 0
    kv_usage: float = 0.1
    kv_metric: str = "vllm:kv_cache_usage_perc"  # "vllm:gpu_cache_usage_perc" before vLLM 0.10
    prefix_queries: float = 0.0
    prefix_hits: float = 0.0
    sleeping: bool = False
    health_status: int = 200  # vLLM answers 503 while draining
    metrics_mode: str = "ok"
    metrics_reads: int = 0
    answering: int = 0
    _open: set[asyncio.StreamWriter] = field(default_factory=set, repr=False)

    # -- running -------------------------------------------------------------------------------------

    async def serve(self) -> asyncio.Server:
        server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)
        self.port = server.sockets[0].getsockname()[1]
        self._server_of_loop = server
        return server

    async def kill(self) -> None:
        """Stop as a crashed server does: no new connections, open ones reset."""
        server = self._server_of_loop
        server.close()
        for writer in list(self._open):
            writer.transport.abort()
        await server.wait_closed()

    def start(self) -> FakeUpstream:
        """Serve from a thread of its own (tests drive lumbung from another process or loop)."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(self.serve())
            ready.set()
            self._loop.run_forever()
            self._server.close()
            self._loop.run_until_complete(self._server.wait_closed())
            self._loop.close()

        self._thread = threading.Thread(target=run, name=f"fake-{self.name}", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def set(self, mode: str, **kwargs: Any) -> None:
        assert mode in MODES, mode
        for key, value in kwargs.items():
            setattr(self, key, value)
        self.mode = mode

    # -- HTTP ----------------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._open.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)
                }
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                body = json.loads(raw) if raw else {}
                self.seen.append(Seen(path, headers, body, time.monotonic(), raw))
                if not await self._respond(method, path, body, reader, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._open.discard(writer)
            writer.close()

    async def _until_closed(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(1024):
            pass
        self.disconnects.append(time.monotonic())

    def _head(self, writer: asyncio.StreamWriter, status: int, headers: dict[str, str]) -> None:
        reason = {200: "OK", 403: "Forbidden", 429: "Too Many Requests", 500: "Internal Server Error"}
        out = [f"HTTP/1.1 {status} {reason.get(status, 'Status')}"] + [
            f"{k}: {v}" for k, v in headers.items()
        ]
        writer.write(("\r\n".join(out) + "\r\n\r\n").encode())

    def _json(
        self, writer: asyncio.StreamWriter, status: int, body: Any, extra: dict[str, str] | None = None
    ) -> None:
        # surrogateescape: a lone \udcff in the text becomes the invalid byte 0xff on the wire
        data = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogateescape")
        self._head(
            writer,
            status,
            {"content-type": "application/json", "content-length": str(len(data)), **(extra or {})},
        )
        writer.write(data)

    async def _respond(
        self,
        method: str,
        path: str,
        body: dict[str, Any],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        mode = self.mode
        anthropic = path.endswith("/messages")
        if method == "GET" and path == "/health":
            self._head(writer, self.health_status, {"content-length": "0"})
            await writer.drain()
            return True
        if method == "GET" and path == "/metrics":
            return await self._metrics(reader, writer)
        if method == "GET" and path.endswith("/models"):
            self._json(writer, 200, {"object": "list", "data": [{"id": "m1", "object": "model"}]})
            await writer.drain()
            return True
        if path.endswith("/count_tokens"):
            self._json(writer, 200, {"input_tokens": 5})
            await writer.drain()
            return True
        if mode == "hang_before_headers":
            await self._until_closed(reader)
            return False
        if mode == "429":
            extra = {} if self.retry_after is None else {"retry-after": str(self.retry_after)}
            err = {"message": "Rate limit reached", "type": "rate_limit_error", "code": "rate_limit_exceeded"}
            self._json(writer, 429, {"type": "error", "error": err} if anthropic else {"error": err}, extra)
            await writer.drain()
            return True
        if mode == "500":
            self._json(writer, 500, {"error": {"message": "The server had an error", "type": "server_error"}})
            await writer.drain()
            return True
        if mode == "403_region":
            err = {
                "code": "unsupported_country_region_territory",
                "message": "Country, region, or territory not supported",
                "type": "request_forbidden",
            }
            self._json(writer, 403, {"error": err})
            await writer.drain()
            return True
        self.answering += 1
        try:
            return await self._answer(body, anthropic, mode, reader, writer)
        finally:
            self.answering -= 1

    async def _answer(
        self,
        body: dict[str, Any],
        anthropic: bool,
        mode: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        if not body.get("stream"):
            return await self._whole(body, anthropic, mode, reader, writer)
        self._head(writer, 200, {"content-type": "text/event-stream", "transfer-encoding": "chunked"})
        await writer.drain()
        if mode == "hang_after_headers":
            await self._until_closed(reader)
            return False
        watcher = asyncio.ensure_future(self._until_closed(reader))
        try:
            return await self._stream(body, anthropic, mode, writer, watcher)
        finally:
            # Gone before the next request is read: two readers at once is an error in asyncio.
            watcher.cancel()
            await asyncio.wait([watcher])

    def metrics_text(self) -> bytes:
        """Prometheus exposition as vLLM writes it (prometheus_client's own writer, vLLM's names)."""
        registry = CollectorRegistry()
        labels = ["model_name", "engine"]
        values = ("m", "0")

        def gauge(name: str, value: float) -> None:
            Gauge(name, name, labels, registry=registry).labels(*values).set(value)

        gauge("vllm:num_requests_running", self.answering if self.running is None else self.running)
        gauge("vllm:num_requests_waiting", self.waiting)
        gauge(self.kv_metric, self.kv_usage)
        for name, value in (("queries", self.prefix_queries), ("hits", self.prefix_hits)):
            Counter(f"vllm:prefix_cache_{name}", name, labels, registry=registry).labels(*values).inc(value)
        sleep = Gauge("vllm:engine_sleep_state", "sleep", [*labels, "sleep_state"], registry=registry)
        sleep.labels(*values, "awake").set(0 if self.sleeping else 1)
        sleep.labels(*values, "weights_offloaded").set(1 if self.sleeping else 0)
        return generate_latest(registry)

    async def _metrics(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        self.metrics_reads += 1
        if self.metrics_mode == "hang":
            await self._until_closed(reader)
            return False
        status, text = 200, self.metrics_text()
        if self.metrics_mode == "garbage":
            text = b"vllm:num_requests_running{{{ nonsense\n\xff\xfe\n"
        elif self.metrics_mode == "foreign":
            text = b"# TYPE process_open_fds gauge\nprocess_open_fds 12.0\n"
        elif self.metrics_mode == "500":
            status, text = 500, b"engine error"
        self._head(
            writer, status, {"content-type": "text/plain; version=0.0.4", "content-length": str(len(text))}
        )
        writer.write(text)
        await writer.drain()
        return True

    def _text(self, body: dict[str, Any]) -> list[str]:
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or self.words
        words = ["Hello" if i == 0 else f" w{i}" for i in range(min(self.words, limit))]
        return [*words[:-1], f" from {self.name}"]

    async def _whole(
        self,
        body: dict[str, Any],
        anthropic: bool,
        mode: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """A whole (non-streamed) answer, misbehaving the way a whole answer can."""
        text = "".join(self._text(body))
        if mode in ("hang_after_headers", "reset_after"):
            self._head(writer, 200, {"content-type": "application/json", "content-length": "500"})
            writer.write(b'{"id": "chatcmpl-fake", "choices": [')
            await writer.drain()
            if mode == "reset_after":
                writer.transport.abort()
                return False
            await self._until_closed(reader)
            return False
        if mode in ("error_event", "error_after"):
            self._json(writer, 200, {"error": {"message": "upstream model crashed", "type": "server_error"}})
            await writer.drain()
            return True
        if mode == "invalid_utf8":
            text = text.replace("Hello", "He\udcffllo")
        if mode == "slow":
            await asyncio.sleep(self.delay * self.words)
        if anthropic:
            self._json(
                writer,
                200,
                {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": body.get("model"),
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": 5, "output_tokens": self.words},
                },
            )
        else:
            self._json(
                writer,
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": 5,
                        "completion_tokens": self.words,
                        "total_tokens": 5 + self.words,
                    },
                },
            )
        await writer.drain()
        self.completed += 1
        return True

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await writer.drain()

    @staticmethod
    def tool_result(body: dict[str, Any]) -> str | None:
        """The text of the last tool result in a request's conversation (either API), or None."""
        found: str | None = None

        def text(content: Any) -> str:
            if isinstance(content, str):
                return content
            return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))

        for message in body.get("messages", []):
            if message.get("role") == "tool":
                found = text(message.get("content"))
            elif isinstance(message.get("content"), list):
                for block in message["content"]:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        found = text(block.get("content"))
        return found

    def _events(self, body: dict[str, Any], anthropic: bool) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """(opening, content, closing) SSE events of a normal answer: a call to the first tool offered
        when the request offers tools (its arguments in several pieces, as providers stream them),
        else text. Scripted as an agent (``agent_tool``): a call of that tool, then text quoting
        the tool's result once it is back."""
        if self.agent_tool is not None:
            result = self.tool_result(body)
            if result is None and body.get("tools"):
                arguments = json.dumps(self.agent_arguments)
                third = max(1, len(arguments) // 3)
                pieces = tuple(arguments[i : i + third] for i in range(0, len(arguments), third))
                return self._tool_events(body, anthropic, self.agent_tool, pieces)
            if result is not None:
                return self._text_events(body, anthropic, ["The tool", " said: ", result.strip()[:200]])
        if body.get("tools"):
            return self._tool_events(body, anthropic)
        return self._text_events(body, anthropic, self._text(body))

    def _text_events(
        self, body: dict[str, Any], anthropic: bool, words: list[str]
    ) -> tuple[list[bytes], list[bytes], list[bytes]]:
        if anthropic:
            opening = [
                _message_start(body.get("model")),
                ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
                ev("ping", {}),
            ]
            content = [
                ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": w}})
                for w in words
            ]
            closing = _message_end("end_turn", len(words))
            return opening, content, closing

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
            return _chunk(body.get("model"), delta, finish, usage)

        opening = [chunk({"role": "assistant", "content": ""})]
        content = [chunk({"content": w}) for w in words]
        usage = {"prompt_tokens": 5, "completion_tokens": len(words), "total_tokens": 5 + len(words)}
        closing = [chunk({}, "stop"), chunk({}, None, usage), b"data: [DONE]\n\n"]
        return opening, content, closing

    TOOL_ARGUMENTS = ('{"city"', ': "Jak', 'arta", ', '"days": ', "3}")

    def _tool_events(
        self,
        body: dict[str, Any],
        anthropic: bool,
        name: str | None = None,
        pieces: tuple[str, ...] = TOOL_ARGUMENTS,
    ) -> tuple[list[bytes], list[bytes], list[bytes]]:
        tool = body["tools"][0]
        if anthropic:
            name = name or tool["name"]
            block: dict[str, Any] = {"type": "tool_use", "id": "toolu_fake", "name": name, "input": {}}
            opening = [
                _message_start(body.get("model")),
                ev("content_block_start", {"index": 0, "content_block": block}),
            ]
            content = [
                ev(
                    "content_block_delta",
                    {"index": 0, "delta": {"type": "input_json_delta", "partial_json": p}},
                )
                for p in pieces
            ]
            closing = _message_end("tool_use", 9)
            return opening, content, closing

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
            return _chunk(body.get("model"), delta, finish, usage)

        name = name or tool["function"]["name"]
        opening = [chunk({"role": "assistant", "content": None})]
        head = {
            "index": 0,
            "id": "call_fake",
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        content = [chunk({"tool_calls": [head]})] + [
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces
        ]
        usage = {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}
        closing = [chunk({}, "tool_calls"), chunk({}, None, usage), b"data: [DONE]\n\n"]
        return opening, content, closing

    def _error_event(self, anthropic: bool) -> bytes:
        if anthropic:
            err = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
            return f"event: error\ndata: {json.dumps(err)}\n\n".encode()
        return b'data: {"error": {"message": "upstream model crashed", "type": "server_error"}}\n\n'

    async def _stream(
        self,
        body: dict[str, Any],
        anthropic: bool,
        mode: str,
        writer: asyncio.StreamWriter,
        watcher: asyncio.Future[None],
    ) -> bool:
        opening, content, closing = self._events(body, anthropic)
        for event in opening:
            await self._send(writer, event)
        if mode == "error_event":
            await self._send(writer, self._error_event(anthropic))
            await self._send(writer, b"")
            return True
        if mode == "invalid_utf8":
            await self._send(writer, content[0].replace(b"Hello", b"He\xff\xfello"))
            await self._send(writer, b"")
            return True
        for i, event in enumerate(content):
            if mode == "stall_after" and i == self.k:
                await watcher  # silent until the caller hangs up
                return False
            if mode in ("reset_after", "error_after") and i == self.k:
                if i > 0:
                    await asyncio.sleep(0.2)  # the content so far reaches the client first, as in real life
                if mode == "error_after":
                    await self._send(writer, self._error_event(anthropic))
                    await self._send(writer, b"")
                    return True
                transport = writer.transport
                transport.abort()
                return False
            if mode == "slow":
                await asyncio.sleep(self.delay)
            if watcher.done():
                return False
            await self._send(writer, event)
        for event in closing:
            await self._send(writer, event)
        await self._send(writer, b"")
        self.completed += 1
        return True
