"""The engine thread: one per loaded model, the sole owner of its llama.cpp context and KV cache.

Requests arrive through a queue; every step decodes one token for every running sequence plus
chunks of waiting prompts in a single ``llama_decode`` batch (continuous batching, see
scheduler.py); tokens go back to each request's asyncio queue with ``call_soon_threadsafe``.
ctypes releases the GIL during decode, so the event loop keeps serving. Errors travel down the
same queues as data.

KV layout: one unified cache shared by all sequences. A *handle* is a KV sequence: ``parallel``
of them decode, the rest hold finished prompts for the prefix cache (prefix_cache.py). A new
request first takes over the cells of the longest matching prefix (``llama_memory_seq_cp`` shares
cells, it copies nothing), from a cache entry or from a sequence still running. Sliding-window
models (Gemma 3) keep those layers' KV window-sized and continue a prefix at a context checkpoint
(swa.py); their cached prefixes live in the cells running sequences leave free, and go, least
recently used first, when a running sequence needs the room.
In deterministic mode (``deterministic``) each sequence has a KV stream of its own instead, no
prefix cache, and is decoded in a batch of its own (``_step_isolated``): its text then does not
depend on the other requests.

LoRA adapters apply to the whole context (lora.py): a step decodes the sequences of one adapter set,
taking the sets in turn when several run (scheduler.py: ``adapter_turn``), and a prefix is reused
only under the adapter set that computed it.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import llama_cpp

from lumbung.config import AmxMode, KvCacheType, RopeScaling, SpeculativeConfig
from lumbung.engines.llamacpp import kv_types, logs, prefix_store, swa
from lumbung.engines.llamacpp.amx import use_extra_buffers
from lumbung.engines.llamacpp.context import ContextPlan, plan_context
from lumbung.engines.llamacpp.detok import StopMatcher
from lumbung.engines.llamacpp.draft_model import DraftModel
from lumbung.engines.llamacpp.forced import ForcedDrafter, mask_of
from lumbung.engines.llamacpp.kv import KvLedger
from lumbung.engines.llamacpp.logprobs import token_logprobs
from lumbung.engines.llamacpp.lora import BASE, LoraKey, apply
from lumbung.engines.llamacpp.model import LlamaModel
from lumbung.engines.llamacpp.prefix_cache import PrefixCache, common_prefix
from lumbung.engines.llamacpp.sampler import Sampler
from lumbung.engines.llamacpp.scheduler import adapter_turn, prefill_shares
from lumbung.engines.llamacpp.sequence import Sequence
from lumbung.engines.llamacpp.speculative import Drafter, NgramDrafter, SpeculationStats, verify
from lumbung.errors import ApiError, EngineError, InternalError, RateLimited
from lumbung.types import Chunk, FinishReason, TokenLogprob, Usage

__all__ = ["Engine", "EngineConfig", "Sequence"]

log = logging.getLogger(__name__)

LLAMA_MAX_SEQ = 256  # llama.cpp's compile-time limit on sequence ids
# A waiting request whose prompt shares this many more tokens with a prompt still being read waits
# for it, then reuses its cells (n > 1 choices, many clients with one system prompt).
SHARE_WAIT_TOKENS = 32
# A reused prefix leaves at least this many prompt tokens to read: the last one gives the logits,
# and a one-token batch takes llama.cpp's single-row kernels, whose rounding differs from the
# prompt-reading ones; with two, a cache hit gave the same greedy text as a miss in every trial
# (docs/performance.md, "Determinism").
RECOMPUTE_TOKENS = 2


@dataclass(slots=True)
class EngineConfig:
    context_size: int | None = None  # tokens per request; None: the model's trained context
    rope_scaling: RopeScaling | None = None  # how to stretch positions past the trained context
    memory_budget: int | None = None  # bytes the weights and KV cache may take (context.py)
    parallel: int = 4  # sequences decoded together
    batch_size: int = 512  # most tokens in one step
    threads: int = 2
    max_queue: int = 64  # requests waiting beyond the free sequences; more get 429
    cache_mb: float = 256.0  # KV memory the prefix cache may hold on its own (0: no prefix cache)
    cache_tokens: int | None = None  # the same budget in cells (tokens); overrides cache_mb
    cache_entries: int = 32  # most finished prefixes kept
    prefill_chunk: int = 256  # most prompt tokens per step while other sequences generate
    flash_attn: bool | None = None  # None: llama.cpp decides
    amx: AmxMode = "auto"  # llama.cpp's AMX kernels, where the build has them (amx.py)
    kv_type: KvCacheType = "f16"  # the KV cache's element type (kv_types.py)
    persist_dir: Path | None = None  # where long cached prefixes are saved at unload (prefix_store.py)
    persist_mb: float = 0.0  # the most they may take on disk (0: not saved)
    persist_min_tokens: int = 256  # shorter prefixes are cheap to recompute: not saved
    speculative: SpeculativeConfig | None = None  # drafts verified in the batch (speculative.py)
    # mode draft: the draft model's GGUF (None: ``speculative.model`` read as a path; draft_model.py)
    draft_model: Path | Callable[[], Path] | None = None
    fast_forward: bool = True  # a grammar's forced tokens decoded as a batch (forced.py)
    deterministic: bool = False  # batch-invariant: each sequence decoded alone (``_step_isolated``)


@dataclass(slots=True)
class EngineStats:
    active: int
    queued: int
    kv_cells: int  # the context's KV capacity
    kv_used: int
    cache_entries: int
    cache_cells: int
    cache_hits: int
    cache_misses: int
    cached_tokens: int
    kv_bytes_per_cell: int = 0
    generated_tokens: int = 0  # sampled since the model loaded (rate() of it: tokens/s)
    fast_forwarded_tokens: int = 0  # of them, forced by a grammar and decoded as a batch
    refused: int = 0  # requests turned away at capacity (429) since the model loaded
    speculation: SpeculationStats | None = None  # None: speculation is off for this model


_WAKE = object()
_STOP = object()


class Engine:
    """Continuous-batching scheduler over one llama.cpp context."""

    def __init__(
        self, model: LlamaModel, config: EngineConfig, name: str = "model", digest: str | None = None
    ) -> None:
        self.model = model
        self.config = config
        self.name = name
        self.ids_per_handle = 1
        self.n_swa = int(llama_cpp.llama_model_n_swa(model.ptr))
        split = swa.kv_split(model.ptr) if self.n_swa > 0 else None
        f16_cell = split.full if split else model.kv_bytes_per_cell
        self.kv_bytes_per_cell = kv_types.cell_bytes(f16_cell, config.kv_type)
        self.speculative = (
            config.speculative if config.speculative and config.speculative.mode != "off" else None
        )
        # Recurrent state cannot drop its last positions, so rejected drafts could not be undone.
        self.can_speculate = not (
            llama_cpp.llama_model_is_recurrent(model.ptr) or llama_cpp.llama_model_is_hybrid(model.ptr)
        )
        if self.speculative and not self.can_speculate:
            log.warning("model %s: recurrent layers cannot roll back drafts; speculation is off", name)
            self.speculative = None
        if self.speculative and config.deterministic:  # drafts are verified in multi-token batches
            log.info("model %s: deterministic mode decodes one token at a time; speculation is off", name)
            self.speculative = None
        self.speculation = SpeculationStats()
        cache_cells = config.cache_tokens
        if cache_cells is None:
            cache_cells = int(config.cache_mb * 2**20) // self.kv_bytes_per_cell
        # Deterministic mode: no prefix cache, as a reused prefix sits elsewhere in KV and was read in
        # other chunks than the same prompt alone (docs/performance.md, "Deterministic mode").
        cache_on = cache_cells > 0 and config.cache_entries > 0 and not config.deterministic
        entries = config.cache_entries if cache_on else 0
        if split:  # each handle holds a window of the sliding-window layers: few cached entries
            entries = swa.entry_handles(config.parallel, entries)
        handles = min(config.parallel + entries, LLAMA_MAX_SEQ // self.ids_per_handle)
        if handles < config.parallel:
            raise EngineError(f"parallel={config.parallel} is more than llama.cpp's sequence limit")
        self.batch_size = max(config.batch_size, config.parallel)
        # The sliding-window layers' KV: a window per handle and a batch (llama.cpp's sizing).
        # Spare sequence ids (never used) buy the sliding-window cache room to put a checkpoint
        # back while every handle holds its window (llama.cpp sizes it by the sequence ids).
        spare = swa.SPARE_IDS if split and cache_on else 0
        window_cells = swa.window_cells(self.n_swa, handles + spare, self.batch_size) if split else 0
        self.kv_window_bytes = (
            window_cells * kv_types.cell_bytes(split.window, config.kv_type) if split else 0
        )
        # Sliding-window models' cached prefixes take the cells running sequences leave free.
        own_cells = cache_cells if cache_on and not split else 0
        self.context: ContextPlan = plan_context(
            name=name,
            trained=model.n_ctx_train,
            configured=config.context_size,
            rope_scaling=config.rope_scaling,
            kv_bytes_per_token=self.kv_bytes_per_cell,
            weights_bytes=model.size_bytes + self.kv_window_bytes,
            parallel=config.parallel,
            cache_cells=own_cells,
            budget_bytes=config.memory_budget,
        )
        self.context_size = self.context.size
        params = llama_cpp.llama_context_default_params()
        # Room for every running sequence's full context, plus what the cache may keep on its own.
        params.n_ctx = self.context.kv_cells(config.parallel, own_cells)
        if self.context.rope_freq_scale is not None:
            params.rope_scaling_type = (
                llama_cpp.LLAMA_ROPE_SCALING_TYPE_YARN
                if self.context.rope_scaling == "yarn"
                else llama_cpp.LLAMA_ROPE_SCALING_TYPE_LINEAR
            )
            params.rope_freq_scale = self.context.rope_freq_scale
            params.yarn_orig_ctx = self.context.trained
        params.n_batch = self.batch_size
        params.n_ubatch = self.batch_size
        params.n_seq_max = handles * self.ids_per_handle + spare
        params.n_threads = config.threads
        params.n_threads_batch = config.threads
        # Sequences share one KV pool, so cached prefixes can be shared; in deterministic mode each
        # has its own stream, laid out as when alone (attention's sums run over the same cells).
        params.kv_unified = not config.deterministic
        params.swa_full = False  # sliding-window layers' KV window-sized; prefixes via checkpoints
        params.no_perf = True
        params.type_k = params.type_v = kv_types.ggml_type(config.kv_type)
        flash_attn = kv_types.flash_attention(config.kv_type, config.flash_attn, name)
        if flash_attn is not None:
            params.flash_attn_type = int(flash_attn)
        with logs.buffer_sizes() as self.buffers:  # KV, compute and output buffers, as allocated
            self.ctx = llama_cpp.llama_init_from_model(model.ptr, params)
        if not self.ctx:
            raise EngineError(f"llama.cpp could not create a context for {name} ({params.n_ctx} tokens)")
        self.n_ctx = int(llama_cpp.llama_n_ctx(self.ctx))
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(self.batch_size, 0, self.ids_per_handle)
        self.ledger = KvLedger()
        # Context checkpoints of sliding-window models (swa.py), counted in the cache's budget.
        self.checkpoints = swa.Checkpoints() if split and cache_on else None
        self.checkpoint_bytes = 0  # published by the engine thread after each step
        self._longest = 0  # the longest prefix the last prompt shared with a candidate (_usable)
        self.cache = PrefixCache(
            self.ledger,
            cache_cells if cache_on else 0,
            handles - config.parallel,
            side_cells=self._checkpoint_cells if self.checkpoints else None,
        )
        kv_allocated = self.buffers.get("KV", self.n_ctx * self.kv_bytes_per_cell + self.kv_window_bytes)
        self.kv_window_bytes = self.buffers.get("KV SWA", self.kv_window_bytes)
        self.memory_bytes = model.size_bytes + kv_allocated
        # One sequence at the full context: a cell per token in the layers that keep every token,
        # and a window of the sliding-window layers.
        window_part = (
            min(self.n_swa, self.context_size) * kv_types.cell_bytes(split.window, config.kv_type)
            if split
            else 0
        )
        self.kv_bytes_per_sequence = self.context_size * self.kv_bytes_per_cell + window_part
        # what the same KV would take in f16 (`lumbung ps` shows what a quantized one saves)
        self.kv_bytes_f16 = self.n_ctx * f16_cell + (window_cells * split.window if split else 0)
        log.info(
            "model %s: %d tokens per request (trained %d; set by %s), KV cache (%s) %.0f MiB for %d "
            "requests and the prefix cache",
            name,
            self.context_size,
            self.context.trained,
            self.context.limited_by,
            config.kv_type,
            kv_allocated / 2**20,
            config.parallel,
        )
        self._free = list(range(handles - 1, -1, -1))
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._waiting: deque[Sequence] = deque()
        self._active: list[Sequence] = []
        self._lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._queued = 0  # submitted, not yet running
        self._outside = 0  # admitted by reserve(): work beside the engine (embeddings)
        self._kv_snapshot = (0, 0, 0)  # (cells used, cells held by the cache alone, cache entries)
        # Counters for /metrics, written by one side only (ints: a read from the loop is whole).
        self.generated_tokens = 0  # engine thread
        self.fast_forwarded = 0  # engine thread: tokens a grammar forced, decoded as a batch (forced.py)
        self.refused = 0  # under _lock
        self._service_time = 2.0  # running average of a request's seconds in a slot (Retry-After)
        self._lora: LoraKey = BASE  # the adapter set on the context now
        self._turn = 0  # steps taken while sequences with different adapter sets ran
        self.last_used = time.monotonic()
        self.draft = self._load_draft()
        self.memory_bytes += self.draft.memory_bytes if self.draft else 0
        self._persist = self._persistence(digest, flash_attn) if cache_on else None
        self.restored = self._restore_prefixes()
        self._thread = threading.Thread(target=self._run, name=f"engine-{name}", daemon=True)
        self._thread.start()

    # -- called from the event loop -------------------------------------------------------------

    @property
    def active(self) -> int:
        return len(self._active)

    @property
    def queued(self) -> int:
        return self._queued

    def stats(self) -> EngineStats:
        """For /v1/models and `lumbung ps`: counters, and KV figures the engine thread published
        after its last step (the ledger itself belongs to that thread)."""
        cache = self.cache
        kv_used, cache_cells, entries = self._kv_snapshot
        return EngineStats(
            active=len(self._active),
            queued=self._queued,
            kv_cells=self.n_ctx,
            kv_used=kv_used,
            cache_entries=entries,
            cache_cells=cache_cells,
            cache_hits=cache.hits,
            cache_misses=cache.misses,
            cached_tokens=cache.reused_tokens,
            kv_bytes_per_cell=self.kv_bytes_per_cell,
            generated_tokens=self.generated_tokens,
            fast_forwarded_tokens=self.fast_forwarded,
            refused=self.refused,
            speculation=self.speculation if self.speculative or self.speculation.drafted else None,
        )

    @property
    def capacity(self) -> int:
        """The most requests it takes at once, running or waiting; more get 429."""
        return self.config.parallel + self.config.max_queue

    def retry_after(self) -> float:
        """Seconds until a slot is likely free: queue depth times the average time in a slot."""
        waves = (self._queued + self._outside + 1) / self.config.parallel
        return min(60.0, max(1.0, self._service_time * waves))

    def submit(self, seq: Sequence, siblings: int = 0) -> None:
        """Queue ``seq``, or refuse it with 429 at capacity. ``siblings``: sequences of the same API
        request already in (its other choices), which are no *other* requests to the client."""
        with self._lock:
            self._check_room(siblings)
            self._queued += 1
        self.last_used = time.monotonic()
        self._inbox.put(seq)

    def reserve(self) -> None:
        """Admit work done beside the engine (an embedding request) within the same capacity as
        sequences, so no kind of request piles up unbounded; ``unreserve`` gives the place back."""
        with self._lock:
            self._check_room(0)
            self._outside += 1
        self.last_used = time.monotonic()

    def unreserve(self) -> None:
        with self._lock:
            self._outside -= 1
        self.last_used = time.monotonic()

    @property
    def outside(self) -> int:
        """Requests admitted by ``reserve`` and not yet done."""
        return self._outside

    def _check_room(self, siblings: int) -> None:
        load = len(self._active) + self._queued + self._outside
        if load >= self.capacity:
            self.refused += 1
            raise RateLimited(
                f"model {self.name!r} is at capacity: {max(0, load - siblings)} other requests are "
                f"running or waiting, and it takes {self.capacity} at once (parallel "
                f"{self.config.parallel} + max_queue {self.config.max_queue}); try again shortly",
                retry_after=self.retry_after(),
            )

    def cancel(self, seq: Sequence) -> None:
        seq.cancelled = True
        self._inbox.put(_WAKE)

    def close(self) -> None:
        with self._close_lock:  # not _lock: the engine thread takes that one while stopping
            if self.ctx is None:
                return
            self._inbox.put(_STOP)
            self._thread.join(timeout=30)
            llama_cpp.llama_batch_free(self.batch)
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
            if self.draft is not None:
                self.draft.close()

    def _load_draft(self) -> DraftModel | None:
        """The draft model of speculative mode ``draft``, with a KV sequence per slot (a refused or
        broken one frees this engine's context and fails the load)."""
        spec = self.speculative
        if spec is None or spec.mode != "draft":
            return None
        source = self.config.draft_model or Path(spec.model or "").expanduser()
        try:
            path = source() if callable(source) else source
            return DraftModel(
                path,
                self.model,
                slots=self.config.parallel,
                slot_cells=self.context_size,
                batch=min(self.batch_size, 512),
                threads=self.config.threads,
                extra_buffers=use_extra_buffers(path, self.config.amx),
            )
        except BaseException:
            llama_cpp.llama_batch_free(self.batch)
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
            raise

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
                    self._save_prefixes()
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
                    (self._step_isolated if self.config.deterministic else self._step)()
                self._kv_snapshot = (self.ledger.used(), self.cache.cells(), len(self.cache))
                self.checkpoint_bytes = self.checkpoints.bytes() if self.checkpoints else 0
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
                self._release(seq)
                seq.emit(_timeout())

    def _running_prefixes(self, key: LoraKey) -> list[tuple[int, list[int]]]:
        return [(s.handle, s.kv_tokens()) for s in self._active if s.n_past and s.lora_key == key]

    def _admit(self) -> None:
        i = 0
        while i < len(self._waiting) and len(self._active) < self.config.parallel:
            seq = self._waiting[i]
            if self._should_wait(seq):
                i += 1
                continue
            del self._waiting[i]
            self._dequeue()
            self._start(seq)

    def _should_wait(self, seq: Sequence) -> bool:
        """True if a prompt still being read shares clearly more with ``seq`` than what is in KV."""
        if not self.cache.enabled:
            return False
        usable = len(seq.prompt) - 1
        key = seq.lora_key
        soon = max(
            (common_prefix(seq.prompt, s.prompt) for s in self._active if s.prefilling and s.lora_key == key),
            default=0,
        )
        if min(soon, usable) < SHARE_WAIT_TOKENS:
            return False
        now = max((common_prefix(seq.prompt, t) for _, t in self._running_prefixes(key)), default=0)
        return min(soon, usable) - now >= SHARE_WAIT_TOKENS

    def _start(self, seq: Sequence) -> None:
        try:
            seq.sampler = Sampler(seq.params, self.model.n_vocab, pre=seq.sampler_pre)
        except Exception as exc:  # this request's own fault or ours: it alone fails
            log.exception("engine %s: could not set up sampling", self.name)
            seq.emit(InternalError(f"could not set up sampling: {exc}"))
            return
        if not self._free:
            lru = self.cache.pop_lru()
            assert lru is not None, "no free KV sequence although a slot is free"
            self._forget(lru)
        seq.handle = self._free.pop()
        seq.tokens = list(seq.prompt)
        seq.stops = StopMatcher(seq.params.stop)
        seq.started = time.monotonic()
        if self.cache.enabled:
            key = seq.lora_key
            limit = len(seq.prompt) - RECOMPUTE_TOKENS
            usable = self._usable(limit) if self.checkpoints is not None else None
            src, matched = self.cache.match(seq.prompt, self._running_prefixes(key), key, usable)
            shared = min(matched, limit)
            taken = 0
            if shared > 0:
                taken = self._take_over(src, seq.handle, shared)
                self.cache.settle(shared, taken)
                seq.n_past = seq.n_cached = taken
            if self.checkpoints is not None and taken < self._longest:
                self.checkpoints.want(seq.handle, self._longest)
        seq.drafter = self._drafter_for(seq)  # last: a draft model's slot is freed with the sequence
        self._active.append(seq)

    def _drafter_for(self, seq: Sequence) -> Drafter | None:
        """What drafts for ``seq``: its grammar's forced tokens first (fast-forward, forced.py), then
        speculation where on (the draft model, or n-grams); rejected drafts are rolled back, which
        recurrent state cannot."""
        spec = self._speculation_for(seq)
        guess: Drafter | None = None
        if spec is not None and spec.mode == "draft" and self.draft is not None:
            guess = self.draft.drafter(seq.tokens, spec.max_draft)
        elif spec is not None:
            guess = NgramDrafter(seq.tokens, spec.ngram, spec.max_draft)
        mask = mask_of(seq.sampler_pre)
        forward = self.config.fast_forward and self.can_speculate and not self.config.deterministic
        return ForcedDrafter(mask, guess) if mask is not None and forward else guess

    def _speculation_for(self, seq: Sequence) -> SpeculativeConfig | None:
        """The model's speculation, unless the request switched it (on: the model's settings, or
        n-gram drafts with the defaults where the model has none)."""
        wanted = seq.params.speculative
        if wanted is False or not self.can_speculate or self.config.deterministic:
            return None
        if wanted is None:
            return self.speculative
        return self.speculative or SpeculativeConfig()

    def _usable(self, limit: int) -> Callable[[int, int], int]:
        """For a sliding-window model's prompt: how much of a candidate's shared prefix can be
        continued (it also notes the longest shared prefix seen, where a checkpoint would help)."""
        assert self.checkpoints is not None
        checkpoints = self.checkpoints
        self._longest = 0

        def usable(handle: int, shared: int) -> int:
            shared = min(shared, limit)
            self._longest = max(self._longest, shared)
            best = checkpoints.best(handle, shared)
            return swa.reuse_point(shared, self.ledger.length(handle), best.pos if best else None)[0]

        return usable

    def _take_over(self, src: int, dst: int, shared: int) -> int:
        """``dst`` (empty) takes over the first ``shared`` tokens' cells of ``src``; for a
        sliding-window model cut back to where they can be continued (swa.py). Returns the tokens
        taken over."""
        restore: swa.Checkpoint | None = None
        if self.checkpoints is not None:
            restore = self.checkpoints.best(src, shared)
            at = restore.pos if restore else None
            shared, use = swa.reuse_point(shared, self.ledger.length(src), at)
            restore = restore if use else None
            if shared == 0:
                return 0
        for seq_id in self._ids(dst):
            llama_cpp.llama_memory_seq_cp(self.mem, self._ids(src)[0], seq_id, 0, shared)
        if restore is not None and not self._restore_window(dst, restore):
            for seq_id in self._ids(dst):
                llama_cpp.llama_memory_seq_rm(self.mem, seq_id, -1, -1)
            return 0
        self.ledger.share(src, dst, shared)
        if self.checkpoints is not None:
            self.checkpoints.inherit(src, dst, shared)
        return shared

    def _window_state(self, handle: int) -> bytes:
        """The sliding-window layers' cells of ``handle`` (its last window), as llama.cpp saves them."""
        seq_id = self._ids(handle)[0]
        size = int(llama_cpp.llama_state_seq_get_size_ext(self.ctx, seq_id, swa.PARTIAL))
        buf = (ctypes.c_uint8 * size)()
        written = int(llama_cpp.llama_state_seq_get_data_ext(self.ctx, buf, size, seq_id, swa.PARTIAL))
        return ctypes.string_at(buf, written)  # one copy (slicing a ctypes array builds a list)

    def _restore_window(self, handle: int, checkpoint: swa.Checkpoint) -> bool:
        data = checkpoint.data
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        seq_id = self._ids(handle)[0]
        done = llama_cpp.llama_state_seq_set_data_ext(self.ctx, buf, len(data), seq_id, swa.PARTIAL)
        if done == 0:
            log.warning("engine %s: a context checkpoint did not fit back; reading the prompt", self.name)
        return bool(done)

    def _prefill_take(self, seq: Sequence, take: int) -> int:
        """A prompt chunk of a sliding-window model ends where the next checkpoint is due."""
        if self.checkpoints is None or not take:
            return take
        return self.checkpoints.cut(seq.handle, seq.n_past, take, len(seq.prompt) - RECOMPUTE_TOKENS)

    def _take_checkpoints(self, seqs: list[Sequence]) -> None:
        """After a step: a checkpoint for every sequence whose prompt reading reached one's place."""
        if self.checkpoints is None:
            return
        for seq in seqs:
            if self.checkpoints.due(seq.handle, seq.n_past, len(seq.prompt) - RECOMPUTE_TOKENS):
                self.checkpoints.add(seq.handle, swa.Checkpoint(seq.n_past, self._window_state(seq.handle)))

    def _checkpoint_cells(self, handles: Iterable[int]) -> int:
        """The cache's checkpoints, in KV cells of the same memory (its budget counts both)."""
        assert self.checkpoints is not None
        return self.checkpoints.bytes(handles) // self.kv_bytes_per_cell

    def _ids(self, handle: int) -> range:
        first = handle * self.ids_per_handle
        return range(first, first + self.ids_per_handle)

    def _step(self) -> None:
        """Decode one batch: the next token of every generating sequence, then prompt chunks."""
        batch, ids_n = self.batch, self.ids_per_handle
        n = 0
        readers: list[tuple[Sequence, int]] = []  # (sequence, batch index whose logits it samples)
        added: list[tuple[Sequence, int]] = []

        def put(token: int, pos: int, handle: int, logits: bool) -> None:
            nonlocal n
            batch.token[n] = token
            batch.pos[n] = pos
            batch.n_seq_id[n] = ids_n
            for j in range(ids_n):
                batch.seq_id[n][j] = handle * ids_n + j
            batch.logits[n] = logits
            n += 1

        group = self._adapter_group()
        generating = [s for s in group if not s.prefilling]
        prefilling = [s for s in group if s.prefilling]
        drafts = self._drafts(generating)
        for seq in generating:
            readers.append((seq, n))
            put(seq.last_token, seq.n_past, seq.handle, True)
            for i, token in enumerate(drafts.get(seq, ())):
                put(token, seq.n_past + 1 + i, seq.handle, True)
            added.append((seq, 1))  # the draft's cells are counted once verified (_verify)
        shares = prefill_shares(
            n,
            [len(s.prompt) - s.n_past for s in prefilling],
            self.batch_size,
            self.config.prefill_chunk,
        )
        for seq, take in zip(prefilling, shares, strict=True):
            take = self._prefill_take(seq, take)
            if not take:
                continue
            end = len(seq.prompt) - 1
            for pos in range(seq.n_past, seq.n_past + take):
                if pos == end:
                    readers.append((seq, n))
                put(seq.prompt[pos], pos, seq.handle, pos == end)
            added.append((seq, take))
        batch.n_tokens = n
        self._decode()
        for seq, count in added:
            seq.n_past += count
            self.ledger.extend(seq.handle, count)
        self._take_checkpoints([seq for seq, _ in added])
        for seq, index in readers:
            assert seq.sampler is not None
            draft = drafts.get(seq)
            if draft:
                self._verify(seq, index, draft)
            else:
                self._on_token(seq, seq.sampler.sample(self.ctx, index), index)

    def _drafts(self, generating: list[Sequence]) -> dict[Sequence, list[int]]:
        """Each speculating sequence's draft for this step, within the batch (every sequence's next
        token first), its answer's ``max_tokens`` and its context."""
        room = self.batch_size - len(generating)
        out: dict[Sequence, list[int]] = {}
        for seq in generating:
            if seq.drafter is None or room <= 0:
                continue
            # a step emits the draft and one token more; the last draft position must fit the context
            limit = min(room, seq.max_tokens - seq.generated - 1, self.context_size - seq.n_past - 2)
            draft = seq.drafter.draft(limit)
            if draft:
                out[seq] = draft
                room -= len(draft)
        return out

    def _verify(self, seq: Sequence, index: int, draft: list[int]) -> None:
        """Sample down the draft while the model agrees with it (speculative.py says why the answer
        is unchanged), drop the KV cells of the rejected draft tokens, emit what was accepted."""
        sampler = seq.sampler
        assert sampler is not None
        out = verify(
            draft,
            lambda i: sampler.sample(self.ctx, index + i),
            lambda token: self.model.is_eog(token) or token in seq.stop_tokens,
        )
        accepted = len(out) - 1
        start = seq.n_past  # the sequence's last token is in; its draft follows from here
        if accepted < len(draft):
            self._drop_from(seq.handle, start + accepted)
        self.ledger.extend(seq.handle, accepted)
        assert seq.drafter is not None
        if isinstance(seq.drafter, ForcedDrafter) and seq.drafter.forced:
            self.fast_forwarded += accepted  # a grammar's forced tokens: no guess, not speculation
        else:
            stats = self.speculation
            stats.steps += 1
            stats.drafted += len(draft)
            stats.accepted += accepted
        seq.drafter.update(len(draft), accepted)
        for j, token in enumerate(out):
            seq.n_past = start + j  # as plain decoding would have it when this token is sampled
            self._on_token(seq, token, index + j)
            if seq.handle < 0:  # finished: _release dropped the cells past it
                return

    def _drop_from(self, handle: int, pos: int) -> None:
        """Remove the handle's KV cells at positions ``pos`` and after (only it holds them)."""
        for seq_id in self._ids(handle):
            if not llama_cpp.llama_memory_seq_rm(self.mem, seq_id, pos, -1):
                raise EngineError(f"llama.cpp could not remove KV cells from position {pos}")

    def _step_isolated(self) -> None:
        """Deterministic mode: each sequence decoded in its own batch, prompts in chunks fixed by the
        prompt alone, so every matrix and attention kernel sees the shapes it would with the sequence
        alone in the engine (docs/performance.md, "Deterministic mode")."""
        batch, chunk = self.batch, min(self.config.prefill_chunk, self.batch_size)
        for seq in list(self._adapter_group()):  # a copy: a sequence that ends leaves _active
            if seq.prefilling:
                end = len(seq.prompt) - 1
                positions = range(seq.n_past, min(seq.n_past + chunk, len(seq.prompt)))
                tokens = [seq.prompt[pos] for pos in positions]
            else:
                end = seq.n_past
                positions = range(seq.n_past, seq.n_past + 1)
                tokens = [seq.last_token]
            for n, (pos, token) in enumerate(zip(positions, tokens, strict=True)):
                batch.token[n] = token
                batch.pos[n] = pos
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = seq.handle
                batch.logits[n] = pos == end
            batch.n_tokens = len(tokens)
            self._decode()
            seq.n_past += len(tokens)
            self.ledger.extend(seq.handle, len(tokens))
            if positions[-1] == end:
                assert seq.sampler is not None
                self._on_token(seq, seq.sampler.sample(self.ctx, len(tokens) - 1), len(tokens) - 1)

    def _adapter_group(self) -> list[Sequence]:
        """The running sequences this step decodes: those of one adapter set (all, when none uses
        one), with that set applied to the context."""
        keys = [s.lora_key for s in self._active]
        group = self._active
        key = BASE
        if any(keys):
            key = cast(LoraKey, adapter_turn(keys, self._turn))
            self._turn += 1
            group = [s for s in self._active if s.lora_key == key]
        if key != self._lora:
            apply(self.ctx, group[0].lora)
            self._lora = key
        return group

    def _decode(self) -> None:
        rc = llama_cpp.llama_decode(self.ctx, self.batch)
        while rc == 1 and len(self.cache):
            # No room in KV. A sliding-window model's cached prefixes live in the running
            # sequences' room: they go, least recently used first. Otherwise this should not happen
            # (see n_ctx): the cache goes.
            if self.checkpoints is None:
                log.warning("engine %s: KV cache full, dropping the prefix cache", self.name)
            for handle in [self.cache.pop_lru()] if self.checkpoints is not None else self.cache.clear():
                if handle is not None:
                    self._forget(handle)
            rc = llama_cpp.llama_decode(self.ctx, self.batch)
        if rc != 0:
            raise EngineError(f"llama_decode returned {rc}")

    def _on_token(self, seq: Sequence, token: int, index: int) -> None:
        seq.generated += 1
        self.generated_tokens += 1
        seq.tokens.append(token)
        if self.model.is_eog(token) or token in seq.stop_tokens:
            self._finish(seq, "", "stop")
            return
        piece = (
            self.model.token_text(token).encode() if token in seq.shown_tokens else self.model.piece(token)
        )
        if seq.params.logprobs is not None:
            seq.logprobs.append(self._logprob(token, piece, index, seq.params.logprobs))
        text = seq.utf8.feed(piece)
        assert seq.stops is not None
        visible, stopped = seq.stops.feed(text)
        if stopped:
            self._finish(seq, visible, "stop", seq.stops.matched)
        elif seq.generated >= seq.max_tokens or seq.n_past + 1 >= self.context_size:
            self._finish(seq, visible + seq.utf8.flush() + seq.stops.flush(), "length")
        elif visible or seq.logprobs:
            seq.emit(Chunk(text=visible, logprobs=_take(seq.logprobs)))

    def _logprob(self, token: int, piece: bytes, index: int, top: int) -> TokenLogprob:
        row = llama_cpp.llama_get_logits_ith(self.ctx, index)
        chosen, best = token_logprobs(row, self.model.n_vocab, token, top)
        text = self.model.piece_text
        return TokenLogprob(text(token), chosen, list(piece), [(text(t), lp) for t, lp in best])

    def _finish(self, seq: Sequence, text: str, reason: FinishReason, stop: str | None = None) -> None:
        usage = Usage(len(seq.prompt), seq.generated, seq.n_cached)
        elapsed = time.monotonic() - seq.started
        self._service_time = 0.8 * self._service_time + 0.2 * elapsed
        self._release(seq)  # first, so a client that sees the end finds the slot free
        seq.emit(
            Chunk(
                text=text, finish_reason=reason, usage=usage, stop_sequence=stop, logprobs=_take(seq.logprobs)
            )
        )

    def _release(self, seq: Sequence, keep: bool = True) -> None:
        """The sequence leaves: its KV becomes a cache entry (or is freed); its sampler is freed."""
        self._active.remove(seq)
        if seq.sampler:
            seq.sampler.close()
            seq.sampler = None
        if seq.drafter is not None:  # a draft model's slot goes back to it
            seq.drafter.close()
            seq.drafter = None
        handle, seq.handle = seq.handle, -1
        if self.ledger.length(handle) > seq.n_past:  # accepted draft cells past where it finished
            self._drop_from(handle, seq.n_past)
            self.ledger.truncate(handle, seq.n_past)
        if keep and self.cache.enabled and seq.n_past > 0:
            freed = self.cache.add(handle, seq.kv_tokens(), seq.lora_key)
        else:
            self._forget(handle)
            freed = self.cache.shrink()  # cells it shared may now be held by the cache alone
        for old in freed:
            self._forget(old)
        self.last_used = time.monotonic()

    def _forget(self, handle: int) -> None:
        """Free a handle's cells (those no other sequence holds) and make it available again."""
        for seq_id in self._ids(handle):
            llama_cpp.llama_memory_seq_rm(self.mem, seq_id, -1, -1)
        self.ledger.drop(handle)
        if self.checkpoints is not None:
            self.checkpoints.drop(handle)
        self._free.append(handle)

    # -- the prefix cache on disk (prefix_store.py) ---------------------------------------------

    def _persistence(self, digest: str | None, flash_attn: bool | None) -> tuple[Path, dict[str, Any]] | None:
        config = self.config
        if config.persist_dir is None or config.persist_mb <= 0:
            return None
        layout: dict[str, Any] = {"ids_per_handle": self.ids_per_handle, "n_embd": self.model.n_embd}
        if self.n_swa:  # saved with window-sized sliding-window layers
            layout["swa_window"] = self.n_swa
        ident = prefix_store.identity(self.model.path, digest, config.kv_type, flash_attn, layout)
        return prefix_store.file_for(config.persist_dir, self.name), ident

    def _restore_prefixes(self) -> int:
        """Before the engine thread starts: the saved entries back into KV and the cache, most
        recently used last. Returns the tokens restored."""
        if self._persist is None:
            return 0
        path, ident = self._persist
        restored = 0
        for entry in reversed(prefix_store.load(path, ident)):
            if not self._free:
                break
            handle = self._free.pop()
            ids = self._ids(handle)
            buf = (ctypes.c_uint8 * len(entry.data)).from_buffer_copy(entry.data)
            if llama_cpp.llama_state_seq_set_data(self.ctx, buf, len(entry.data), ids[0]) == 0:
                log.warning(
                    "engine %s: a saved prefix did not fit back into KV; the rest stay cold", self.name
                )
                self._forget(handle)
                break
            for other in ids[1:]:
                llama_cpp.llama_memory_seq_cp(self.mem, ids[0], other, 0, len(entry.tokens))
            self.ledger.extend(handle, len(entry.tokens))
            if self.checkpoints is not None:  # so a longer prompt may also continue it
                self.checkpoints.add(handle, swa.Checkpoint(len(entry.tokens), self._window_state(handle)))
            for old in self.cache.add(handle, entry.tokens):
                self._forget(old)
            restored += len(entry.tokens)
        if restored:
            log.info("model %s: %d cached prefix tokens restored from %s", self.name, restored, path)
        return restored

    def _save_prefixes(self) -> None:
        """On the engine thread, at unload: the longest-lived cached prefixes of the base model
        (most recently used first, within ``persist_mb``) to disk."""
        if self._persist is None:
            return
        path, ident = self._persist
        budget, entries = int(self.config.persist_mb * 2**20), []
        for handle, tokens in self.cache.recent_first():
            seq_id = self._ids(handle)[0]
            size = int(llama_cpp.llama_state_seq_get_size(self.ctx, seq_id))
            if len(tokens) < self.config.persist_min_tokens or size > budget:
                continue
            buf = (ctypes.c_uint8 * size)()
            written = int(llama_cpp.llama_state_seq_get_data(self.ctx, buf, size, seq_id))
            entries.append(prefix_store.Entry(tokens, bytes(buf[:written])))
            budget -= written
        try:
            prefix_store.save(path, ident, entries)
        except OSError as exc:
            log.warning("engine %s: could not save the prefix cache to %s: %s", self.name, path, exc)
            return
        log.info("model %s: %d cached prefixes saved to %s", self.name, len(entries), path)

    def _fail_all(self, exc: BaseException) -> None:
        for seq in list(self._active):
            self._release(seq, keep=False)
            seq.emit(exc)
        while self._waiting:
            self._waiting.popleft().emit(exc)
            self._dequeue()


def _take(items: list[TokenLogprob]) -> list[TokenLogprob]:
    out = items[:]
    items.clear()
    return out


def _timeout() -> ApiError:
    return ApiError("the request ran past its deadline", status=504, code="timeout")
