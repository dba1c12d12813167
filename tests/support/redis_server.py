"""A real ``redis-server`` (Debian's package, installed by tests/support/debian.py when missing) for the
tests that share state through Redis: the ``redis_server`` fixture starts one on a free port of
127.0.0.1 with its files in a temporary folder, nothing saved to disk, and stops it after the test.

    async def test_x(redis_server: RedisServer) -> None:
        ... Settings(redis_url=redis_server.url) ...
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.debian import ensure
from tests.support.server import free_port


@dataclass
class RedisServer:
    port: int
    folder: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, *words: str) -> bytes:
        """One command over a plain socket (RESP), its raw answer: for checks from a test."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            parts = [f"*{len(words)}\r\n".encode()]
            for word in words:
                data = word.encode()
                parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
            conn.sendall(b"".join(parts))
            return conn.recv(65536)

    def logs(self) -> str:
        path = self.folder / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def restart(self) -> RedisServer:
        """Stopped, then started again on the same port, empty (as after a crash without saving)."""
        self.stop()
        fresh = start_redis(self.folder, port=self.port)
        self.proc = fresh.proc
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_redis(folder: Path, timeout: float = 30.0, port: int | None = None) -> RedisServer:
    """A redis-server on ``port`` (default: a free one), answering PING."""
    binary = ensure("redis-server", "redis-server")
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)]
    args += ["--save", "", "--appendonly", "no", "--logfile", str(folder / "redis.log")]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    server = RedisServer(port, folder, proc)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}:\n{server.logs()}")
        try:
            if server.command("PING").startswith(b"+PONG"):
                return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"redis-server did not answer within {timeout} s:\n{server.logs()}")
        time.sleep(0.05)


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()
