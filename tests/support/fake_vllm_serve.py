"""A stand-in for `vllm serve` (no GPU here): takes vLLM's command line, serves a fake upstream's
OpenAI API, /health and /metrics on ``--port``, prints its arguments (they land in lumbung's log of
it), and misbehaves on request: ``GET /crash`` ends it with status 1, ``GET /sick`` turns its /health
to 503; in its environment ``FAKE_VLLM_EXIT=N`` ends it with status N as soon as it starts, and
``FAKE_VLLM_SICK=1`` keeps its /health at 503.

    python -m tests.support.fake_vllm_serve MODEL --port 8000 --tensor-parallel-size 1 ...
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from tests.support.fake_upstream import FakeUpstream


class StandIn(FakeUpstream):
    async def _respond(
        self,
        method: str,
        path: str,
        body: dict[str, Any],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        if path == "/crash":
            print("crashing on purpose", flush=True)
            os._exit(1)
        if path == "/sick":
            self.health_status = 503
            self._json(writer, 200, {"sick": True})
            await writer.drain()
            return True
        return await super()._respond(method, path, body, reader, writer)


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="vllm serve")
    parser.add_argument("model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    args, rest = parser.parse_known_args(argv)
    print(
        f"fake vllm serve {args.model} port={args.port} tp={args.tensor_parallel_size} "
        f"gpu_memory_utilization={args.gpu_memory_utilization} rest={rest} "
        f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}",
        flush=True,
    )
    code = os.environ.get("FAKE_VLLM_EXIT")
    if code:
        sys.exit(int(code))
    stand_in = StandIn(name=f"vllm-{args.port}", port=args.port, words=3)
    if os.environ.get("FAKE_VLLM_SICK"):
        stand_in.health_status = 503  # serves, but never healthy
    server = await stand_in.serve()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
