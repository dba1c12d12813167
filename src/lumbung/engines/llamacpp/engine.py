"""The engine thread: one per loaded model, the sole owner of its llama.cpp context and KV cache.

Requests arrive through a queue; every step decodes one token for every running sequence plus a
chunk of waiting prompts in a single ``llama_decode`` batch (continuous batching); tokens go back to
each request's asyncio queue with ``call_soon_threadsafe``. ctypes releases the GIL during decode, so
the event loop keeps serving. Errors travel down the same queues as data.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import llama_cpp

from lumbung.engines.llamacpp.detok import StopMatcher, Utf8Stream
from lumbung.engines.llamacpp.model import LlamaModel
from lumbung.engines.llamacpp.sampler import Sampler
from lumbung.errors import ApiError, EngineError, InternalError, RateLimited
from lumbung.types import Chunk, FinishReason, SamplingParams, Usage

log = logging.getLogger(__name__)


@dataclass(slots=True)
class EngineConfig:
    context_size: int = 4096  # tokens per sequence
    parallel: int = 4
    batch_size: int = 512
    threads: int = 2
    max_queue: int = 64


@dataclass(eq=False)
class Sequence:
    """One generation request as the engine thread sees it."""

    prompt: list[int]
    params: SamplingParams
    max_tokens: int
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue[Chunk | BaseException]
    deadline: float = float("inf")
    stop_tokens: frozenset[int] = frozenset()
    sampler_pre: tuple[Any, ...] = ()
    cancelled: bool = False
    # Engine-thread state below.
    slot: int = -1
    n_past: int = 0  # tokens of this sequence in the KV cache
    n_cached: int = 0  # prompt tokens reused from the cache
    generated: int = 0
    last_token: int = -1
    sampler: Sampler | None = None
    utf8: Utf8Stream = field(default_factory=Utf8Stream)
    stops: StopMatcher | None = None

    def emit(self, item: Chunk | BaseException) -> None:
        try:
            self.loop.call_soon_threadsafe(self.out.put_nowait, item)
        except RuntimeError:  # the event loop is gone: nobody is listening any more
            self.cancelled = True

    @property
    def prefilling(self) -> bool:
        return self.n_past < len(self.prompt)


_WAKE = object()
_STOP = object()


class Engine:
    """Continuous-batching scheduler over one llama.cpp context."""

    def __init__(self, model: LlamaModel, config: EngineConfig, name: str = "model") -> None:
        self.model = model
        self.config = config
        self.name = name
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = config.context_size * config.parallel
        params.n_batch = config.batch_size
        params.n_ubatch = config.batch_size
        params.n_seq_max = config.parallel
        params.n_threads = config.threads
        params.n_threads_batch = config.threads
        params.kv_unified = True  # sequences share one KV pool, so cached prefixes can be shared
        params.swa_full = True  # sliding-window models keep full KV: prefixes stay reusable
        params.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(model.ptr, params)
        if not self.ctx:
            raise EngineError(f"llama.cpp could not create a context for {name} ({params.n_ctx} tokens)")
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(config.batch_size, 0, 1)
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._waiting: deque[Sequence] = deque()
        self._active: list[Sequence] = []
        self._free_slots = list(range(config.parallel - 1, -1, -1))
        self._lock = threading.Lock()
        self._queued = 0  # submitted, not yet running
        self.last_used = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"engine-{name}", daemon=True)
        self._thread.start()

    # -- called from the event loop -------------------------------------------------------------

    @property
    def active(self) -> int:
        return len(self._active)

    @property
    def queued(self) -> int:
        return self._queued

    def submit(self, seq: Sequence) -> None:
        with self._lock:
            if self._queued >= self.config.max_queue + max(0, self.config.parallel - len(self._active)):
                raise RateLimited(
                    f"model {self.name!r} has {self._queued} requests waiting; try again shortly",
                    retry_after=1.0,
                )
            self._queued += 1
        self.last_used = time.monotonic()
        self._inbox.put(seq)

    def cancel(self, seq: Sequence) -> None:
        seq.cancelled = True
        self._inbox.put(_WAKE)

    def close(self) -> None:
        self._inbox.put(_STOP)
        self._thread.join(timeout=30)
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)
        self.ctx = None

    # -- the engine thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            idle = not self._active and not self._waiting
            try:
                item = self._inbox.get() if idle else self._inbox.get_nowait()
            except queue.Empty:
                item = None
            while item is not None:
                if item is _STOP:
                    self._fail_all(EngineError("the model was unloaded"))
                    return
                if isinstance(item, Sequence):
                    self._waiting.append(item)
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    item = None
            try:
                self._reap()
                self._admit()
                if self._active:
                    self._step()
            except Exception as exc:  # a bug or a decode failure: fail the batch, keep serving
                log.exception("engine %s step failed", self.name)
                self._fail_all(InternalError(f"the engine failed: {exc}"))

    def _dequeue(self) -> None:
        with self._lock:
            self._queued -= 1

    def _reap(self) -> None:
        now = time.monotonic()
        for seq in list(self._waiting):
            if seq.cancelled or now > seq.deadline:
                self._waiting.remove(seq)
                self._dequeue()
                if not seq.cancelled:
                    seq.emit(_timeout())
        for seq in list(self._active):
            if seq.cancelled:
                self._release(seq)
            elif now > seq.deadline:
                seq.emit(_timeout())
                self._release(seq)

    def _admit(self) -> None:
        while self._waiting and self._free_slots:
            seq = self._waiting.popleft()
            self._dequeue()
            try:
                seq.sampler = Sampler(seq.params, self.model.n_vocab, pre=seq.sampler_pre)
            except Exception as exc:  # this request's own fault or ours: it alone fails
                log.exception("engine %s: could not set up sampling", self.name)
                seq.emit(InternalError(f"could not set up sampling: {exc}"))
                continue
            seq.stops = StopMatcher(seq.params.stop)
            seq.slot = self._free_slots.pop()
            llama_cpp.llama_memory_seq_rm(self.mem, seq.slot, -1, -1)
            self._active.append(seq)

    def _step(self) -> None:
        """Decode one batch: the next token of every running sequence, then prompt chunks."""
        batch, cap = self.batch, self.config.batch_size
        n = 0
        readers: list[tuple[Sequence, int]] = []  # (sequence, batch index whose logits it samples)
        added: list[tuple[Sequence, int]] = []

        def put(token: int, pos: int, slot: int, logits: bool) -> None:
            nonlocal n
            batch.token[n] = token
            batch.pos[n] = pos
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = slot
            batch.logits[n] = logits
            n += 1

        for seq in self._active:
            if not seq.prefilling:
                readers.append((seq, n))
                put(seq.last_token, seq.n_past, seq.slot, True)
                added.append((seq, 1))
        for seq in self._active:
            if not seq.prefilling or n >= cap:
                continue
            start = seq.n_past
            take = min(len(seq.prompt) - start, cap - n)
            end = len(seq.prompt) - 1
            for pos in range(start, start + take):
                if pos == end:
                    readers.append((seq, n))
                put(seq.prompt[pos], pos, seq.slot, pos == end)
            added.append((seq, take))
        batch.n_tokens = n
        rc = llama_cpp.llama_decode(self.ctx, batch)
        if rc != 0:
            raise EngineError(f"llama_decode returned {rc}")
        for seq, count in added:
            seq.n_past += count
        for seq, index in readers:
            assert seq.sampler is not None
            self._on_token(seq, seq.sampler.sample(self.ctx, index))

    def _on_token(self, seq: Sequence, token: int) -> None:
        seq.generated += 1
        seq.last_token = token
        if self.model.is_eog(token) or token in seq.stop_tokens:
            self._finish(seq, "", "stop")
            return
        text = seq.utf8.feed(self.model.piece(token))
        assert seq.stops is not None
        visible, stopped = seq.stops.feed(text)
        if stopped:
            self._finish(seq, visible, "stop", seq.stops.matched)
        elif seq.generated >= seq.max_tokens or seq.n_past + 1 >= self.config.context_size:
            self._finish(seq, visible + seq.utf8.flush() + seq.stops.flush(), "length")
        elif visible:
            seq.emit(Chunk(text=visible))

    def _finish(self, seq: Sequence, text: str, reason: FinishReason, stop: str | None = None) -> None:
        usage = Usage(len(seq.prompt), seq.generated, seq.n_cached)
        seq.emit(Chunk(text=text, finish_reason=reason, usage=usage, stop_sequence=stop))
        self._release(seq)

    def _release(self, seq: Sequence) -> None:
        self._active.remove(seq)
        llama_cpp.llama_memory_seq_rm(self.mem, seq.slot, -1, -1)
        if seq.sampler:
            seq.sampler.close()
            seq.sampler = None
        self._free_slots.append(seq.slot)
        seq.slot = -1
        self.last_used = time.monotonic()

    def _fail_all(self, exc: BaseException) -> None:
        for seq in list(self._active):
            seq.emit(exc)
            self._release(seq)
        while self._waiting:
            self._waiting.popleft().emit(exc)
            self._dequeue()


def _timeout() -> ApiError:
    return ApiError("the request ran past its deadline", status=504, code="timeout")
