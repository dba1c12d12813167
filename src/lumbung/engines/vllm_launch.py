"""Starting and supervising `vllm serve` processes on this machine (a vLLM provider's ``launch:``).

One ``Supervised`` per replica runs its process, appends its output to a log file under the data
directory, checks its ``/health`` every ``health_interval`` seconds, and restarts it when it ends or
stays unhealthy: after a pause that doubles with each crash in a row (``backoff``), back to the first
once it has been healthy for ``reset_after`` seconds. Pauses and checks run on the injected clock, so
tests step through restarts with a fake one; the process itself is real.

    starting --/health 200--> healthy --N failed checks--> (terminated) --> backoff --> starting
        \\--ended, or no 200 within startup_timeout--> backoff
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from lumbung.clock import TimerClock, sleep
from lumbung.config import LaunchConfig
from lumbung.engines import http1
from lumbung.engines.http_common import TRANSPORT_ERRORS

log = logging.getLogger(__name__)


class Phase(enum.Enum):
    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    BACKOFF = "backoff"
    STOPPED = "stopped"


class Supervised:
    """One replica's process, kept running."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        log_path: Path,
        health_url: str,
        config: LaunchConfig,
        clock: TimerClock,
    ) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, dict(env), log_path
        self.config, self.clock = config, clock
        self.http = http1.Pool(health_url, {}, limit=1, connect_timeout=2.0, read_timeout=5.0)
        self.phase = Phase.STOPPED
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.crashes = 0  # ends in a row without ``reset_after`` seconds of health between them
        self.exit_codes: list[int] = []
        self.next_pause: float | None = None
        self.healthy_since: float | None = None
        self.checks = 0  # health checks done
        self.ticking = False  # waiting for the next check (or the process's end)
        self._task: asyncio.Task[None] | None = None

    @property
    def restarts(self) -> int:
        return max(0, self.starts - 1)

    def pause(self) -> float:
        """The pause before the next start: ``initial`` doubled per crash in a row, at most ``max``."""
        b = self.config.backoff
        return float(min(b.max, b.initial * 2 ** max(0, self.crashes - 1)))

    async def healthy(self) -> bool:
        try:
            async with asyncio.timeout(5.0):
                async with self.http.get("/health") as response:
                    await response.read()
                    return response.status == 200
        except TRANSPORT_ERRORS:
            return False
        finally:
            self.checks += 1

    async def _spawn(self, out: IO[bytes]) -> asyncio.subprocess.Process:
        self.starts += 1
        self.phase, self.healthy_since = Phase.STARTING, None
        out.write(f"--- lumbung: start {self.starts}: {' '.join(self.argv)}\n".encode())
        out.flush()
        log.info("vllm %s: starting (%s)", self.name, " ".join(self.argv))
        return await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,  # its own process group: a stop reaches vLLM's workers too
        )

    async def _watch(self, process: asyncio.subprocess.Process) -> None:
        """Returns when the process ended, or after it was stopped for failing its health checks."""
        started = self.clock()
        failed = 0
        exited = asyncio.ensure_future(process.wait())
        try:
            while True:
                tick = asyncio.ensure_future(sleep(self.clock, self.config.health_interval))
                await asyncio.sleep(0)  # the tick's timer is set
                self.ticking = True
                await asyncio.wait({exited, tick}, return_when=asyncio.FIRST_COMPLETED)
                self.ticking = False
                tick.cancel()
                if exited.done():
                    return
                if await self.healthy():
                    failed = 0
                    if self.phase is not Phase.HEALTHY:
                        log.info("vllm %s: healthy", self.name)
                        self.phase, self.healthy_since = Phase.HEALTHY, self.clock()
                    continue
                if self.phase is Phase.STARTING:
                    if self.clock() - started < self.config.startup_timeout:
                        continue
                    log.warning("vllm %s: not healthy within %ss", self.name, self.config.startup_timeout)
                else:
                    failed += 1
                    self.phase = Phase.UNHEALTHY
                    if failed < self.config.unhealthy_after:
                        continue
                    log.warning("vllm %s: %d failed health checks", self.name, failed)
                await self._stop(process)
                return
        finally:
            if not exited.done():
                exited.cancel()

    async def _run(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            while True:
                process = self.process = await self._spawn(out)
                await self._watch(process)
                code = await process.wait()
                self.exit_codes.append(code)
                healthy_for = 0.0 if self.healthy_since is None else self.clock() - self.healthy_since
                self.crashes = 1 if healthy_for >= self.config.backoff.reset_after else self.crashes + 1
                self.next_pause = self.pause()
                self.phase = Phase.BACKOFF
                out.write(f"--- lumbung: exited with {code}; restart in {self.next_pause:g}s\n".encode())
                out.flush()
                log.warning("vllm %s: exited with %s; restart in %gs", self.name, code, self.next_pause)
                await sleep(self.clock, self.next_pause)
                self.next_pause = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"vllm-{self.name}")

    async def _stop(self, process: asyncio.subprocess.Process) -> None:
        """SIGTERM to its process group (vLLM drains), SIGKILL after ``stop_timeout``."""
        if process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(self.config.stop_timeout):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.process is not None:
            await self._stop(self.process)
        self.phase = Phase.STOPPED
        await self.http.close()


class Launcher:
    """A vLLM provider's launched replicas (a gateway watcher: started and closed with the server)."""

    def __init__(self, processes: list[Supervised]) -> None:
        self.processes = processes

    @classmethod
    def of(cls, provider: str, config: LaunchConfig, home: Path, clock: TimerClock) -> Launcher:
        processes = []
        for i, url in enumerate(config.urls()):
            env = dict(config.env)
            if config.gpus:
                env["CUDA_VISIBLE_DEVICES"] = config.gpus[i]
            root = url.removesuffix("/v1")
            log_path = home / "logs" / "vllm" / f"{provider}-{i}.log"
            processes.append(
                Supervised(f"{provider}[{i}]", config.argv(i), env, log_path, root, config, clock)
            )
        return cls(processes)

    def start(self) -> None:
        for process in self.processes:
            process.start()

    async def aclose(self) -> None:
        await asyncio.gather(*(p.aclose() for p in self.processes))
