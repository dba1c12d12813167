"""The fast mock upstream of bench/gateway_overhead.py: an OpenAI-compatible chat endpoint on
127.0.0.1 that answers at once (whole or streamed, 8 content chunks), on uvloop, keep-alive.

Usage: python bench/gateway_overhead_mock.py PORT
"""

from __future__ import annotations

import asyncio
import json
import sys

WORDS = ["Hello", " from", " the", " fast", " mock", " up", "stream", "."]


def _whole(model: str) -> bytes:
    body = {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "".join(WORDS)}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": len(WORDS), "total_tokens": 9 + len(WORDS)},
    }
    data = json.dumps(body).encode()
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(data),
        data,
    )


def _stream(model: str) -> bytes:
    def chunk(delta: dict[str, object], finish: str | None = None, usage: object = None) -> bytes:
        choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]
        obj = {
            "id": "chatcmpl-mock",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": choices,
            "usage": usage,
        }
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    usage = {"prompt_tokens": 9, "completion_tokens": len(WORDS), "total_tokens": 9 + len(WORDS)}
    events = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": w}) for w in WORDS]
    events += [chunk({}, "stop"), chunk({}, None, usage), b"data: [DONE]\n\n"]
    out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    for event in events:
        out += b"%x\r\n%s\r\n" % (len(event), event)
    return out + b"0\r\n\r\n"


_cache: dict[tuple[str, bool], bytes] = {}


async def _connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = json.loads(await reader.readexactly(length)) if length else {}
            key = (str(body.get("model", "m")), bool(body.get("stream")))
            if key not in _cache:
                _cache[key] = _stream(key[0]) if key[1] else _whole(key[0])
            writer.write(_cache[key])
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(_connection, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(int(sys.argv[1])))
