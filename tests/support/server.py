"""Starts real `lumbung serve` processes on 127.0.0.1 for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

TEST_CONTEXT = 8192


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A `lumbung serve` child process with its own port and log file; stopped by ``stop``."""

    def __init__(
        self,
        home: Path,
        *,
        config: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.home = home
        self.port = free_port()
        self.log_dir = log_dir or home
        self.log_path = self.log_dir / f"server-{self.port}.log"
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = self.log_dir / f"config-{self.port}.yaml"
            self.config_path.write_text(yaml.safe_dump(config))
        self.env = {**os.environ, "LUMBUNG_HOME": str(home), "PYTHONUNBUFFERED": "1", **(env or {})}
        if "context_size" not in (config or {}):
            # The models' own contexts (Gemma 3: 32k) take gigabytes of KV cache for `parallel`
            # requests; the tests share one machine, so servers that do not ask for them get 8k.
            self.env.setdefault("LUMBUNG_CONTEXT_SIZE", str(TEST_CONTEXT))
        self.env.pop("LUMBUNG_CONFIG", None)
        self.args = args or []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "lumbung", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.config_path:
            cmd += ["--config", str(self.config_path)]
        return cmd + self.args

    def start(self, *, wait_ready: bool = True, timeout: float = 120.0) -> ServerProcess:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.command(), env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.base_url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.logs()}")

    def ps(self) -> str:
        """What `lumbung ps` prints about this server (its own process, as a user runs it)."""
        env = {k: v for k, v in os.environ.items() if k != "LUMBUNG_CONFIG"}
        out = subprocess.run(
            [sys.executable, "-m", "lumbung", "ps", "--url", self.base_url],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
