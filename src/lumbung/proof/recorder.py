"""The recordings' one writer: exchanges come in through a bounded queue and a thread of their own
builds, redacts and appends them, so recording never delays or fails the answer it records.

    submit (the event loop: noted, handed to the queue on the loop's next turn; a drop counted
            when the queue is full)
      -> thread: build the Exchange -> redact -> size caps -> one O_APPEND write per line

Why the next turn: a put wakes the writer thread, which then wants the GIL; uvloop releases it
between callbacks, so a thread woken in the turn that wrote the answer's last bytes ran before the
kernel had them sent (corked) and the client waited for the recording's JSON. Handed over a turn
later, the answer has left first (docs/performance.md, "Shadow traffic").

One ``write`` of one whole line with O_APPEND is what makes an append atomic per line: a reader (or a
crash) sees whole lines, and at most a torn last one, which ``read_exchanges`` skips. Retention runs
in the same thread (at start, then hourly), so it never races an append.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from lumbung.config import RecordingConfig
from lumbung.proof.exchange import RECORDINGS_DIR, Exchange, recording_path
from lumbung.proof.redact import Redactor

log = logging.getLogger(__name__)
PRUNE_EVERY = 3600.0  # seconds between retention passes while serving
OUTCOMES = ("written", "dropped", "too_large", "full", "failed")


Build = Callable[[], Exchange]
WallClock = Callable[[], float]  # unix seconds: retention compares with exchanges' ``created``


class Recorder:
    def __init__(self, home: Path, config: RecordingConfig, clock: WallClock = time.time) -> None:
        self.home = home
        self.dir = home / RECORDINGS_DIR
        self.config = config
        self.clock = clock
        self.redactor = Redactor(config.redact.paths, config.redact.patterns)
        self.counts: Counter[str] = Counter({outcome: 0 for outcome in OUTCOMES})
        self._queue: queue.Queue[tuple[str, Build] | None] = queue.Queue(config.queue)
        self._noted: deque[tuple[str, Build]] = deque()  # submitted this turn, handed over the next
        self._sizes: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pruned_at = float("-inf")

    def submit(self, name: str, build: Build) -> None:
        """Queue one exchange for recording ``name``; never blocks (a full queue drops it, counted)."""
        if self._thread is None:
            self.start()
        scheduled = bool(self._noted)  # something noted this turn: its hand-over is on the way
        self._noted.append((name, build))
        if scheduled:
            return
        try:
            asyncio.get_running_loop().call_soon(self._hand_over)
        except RuntimeError:
            self._hand_over()  # no loop (a script, a test): at once

    def _hand_over(self) -> None:
        """Move what was submitted into the writer's queue (waking the writer)."""
        while self._noted:
            item = self._noted.popleft()
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                self.counts["dropped"] += 1

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lumbung-recorder", daemon=True)
                self._thread.start()

    def flush(self) -> None:
        """Wait until everything submitted so far is written (tests, shutdown)."""
        self._hand_over()
        if self._thread is not None:
            self._queue.join()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (for up to ``timeout`` seconds), then stop the thread."""
        thread = self._thread
        if thread is None:
            return
        self._hand_over()
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.warning("recordings: the writer did not drain in %.0f s; queued exchanges are lost", timeout)
            return
        thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        self._prune_if_due()
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._write(*item)
                self._prune_if_due()
            except Exception:
                log.exception("recordings: an exchange could not be written")
                self.counts["failed"] += 1
            finally:
                self._queue.task_done()

    def _write(self, name: str, build: Build) -> None:
        data = self.redactor.apply(asdict(build()))
        line = (json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        if len(line) > self.config.max_exchange_bytes:
            self.counts["too_large"] += 1
            return
        path = recording_path(self.home, name)
        size = self._sizes.get(name)
        if size is None:
            size = path.stat().st_size if path.exists() else 0
        if size + len(line) > self.config.max_recording_bytes:
            self.counts["full"] += 1
            return
        append_line(path, line)
        self._sizes[name] = size + len(line)
        self.counts["written"] += 1

    def _prune_if_due(self) -> None:
        if self.config.retention_days is None or self.clock() - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = self.clock()
        cutoff = self.clock() - self.config.retention_days * 86400
        if self.dir.is_dir():
            for path in sorted(self.dir.glob("*.jsonl")):
                prune(path, cutoff)
        self._sizes.clear()


def append_line(path: Path, line: bytes) -> None:
    """Append one whole line in one write (O_APPEND): never interleaved with another writer's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        written = os.write(fd, line)
        while written < len(line):  # a regular file takes it whole; a short write is finished here
            written += os.write(fd, line[written:])
    finally:
        os.close(fd)


def prune(path: Path, cutoff: float) -> int:
    """Delete the exchanges of ``path`` created before ``cutoff`` (unix time), rewriting it atomically;
    lines that are not exchanges are kept as they are. Returns how many were deleted."""
    kept: list[bytes] = []
    dropped = 0
    with path.open("rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                continue  # a torn last line: nothing to keep
            try:
                created = json.loads(line).get("created", 0.0)
            except (ValueError, AttributeError):
                kept.append(line)
                continue
            if isinstance(created, int | float) and created < cutoff:
                dropped += 1
            else:
                kept.append(line)
    if dropped:
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(b"".join(kept))
        os.chmod(tmp, 0o600)
        if kept:
            tmp.replace(path)
        else:
            tmp.unlink()
            path.unlink()
    return dropped
