"""Sliding-window models (Gemma 2 and 3, Cohere 2, ...) with window-sized KV and context checkpoints.

Most layers of these models attend only to the last ``window`` positions. llama.cpp keeps those
layers' KV window-sized when ``swa_full`` is off (``window x sequence ids + batch`` cells instead of
the whole context), overwriting cells once every query that could see them has passed. A finished
sequence then holds its full-attention layers' cells for every position but its sliding-window
layers' cells only for the last ``window`` positions, so a prefix of it can be continued only:

- at its end (a chat growing turn by turn): the window before that point is still there;
- at a *checkpoint*: a snapshot of the sliding-window layers' cells of the sequence, taken when it
  was that long (``llama_state_seq_get_data_ext`` with ``LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY``: the
  window's cells only, a few MiB), put back into the new sequence after it took over the shared
  full-attention cells.

Checkpoints are taken while a prompt is read, at every multiple of ``every`` tokens, 128 and 32
tokens before its end (a request that shares all but the question), just before the prompt's last
tokens, and where it parted from the cached prompt it matched best without being
able to continue it (a system prompt shared by the next requests; prompt chunks are cut to end at
these places); a handle keeps at most ``most`` of them, thinned
where they are densest. A prompt reuses the longest shared prefix cut back to the best checkpoint
at or before it (or the whole source, when the prompt extends it). This module is the bookkeeping;
the engine does the llama.cpp calls.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import llama_cpp

from lumbung.engines.llamacpp import logs

CHECKPOINT_EVERY = 1024  # tokens between checkpoints while a prompt is read
TAIL_OFFSETS = (128, 32)  # and this many tokens before its end: a request differing only there
MAX_CHECKPOINTS = 5  # per handle: each is a window of the sliding-window layers' KV
# sequence ids no handle uses: a window of room each, to restore a checkpoint into a full cache
SPARE_IDS = 2
PROTECTED = 1 + len(TAIL_OFFSETS)  # the last ones (near the prompt's end) are never thinned
PARTIAL = llama_cpp.LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY  # the sliding-window layers only
_PROBE_CELLS = 256
_PAD = 256  # llama.cpp rounds the sliding-window cache up to this


@dataclass(frozen=True, slots=True)
class Checkpoint:
    pos: int  # the sequence's length when taken: its next token goes at ``pos``
    data: bytes  # llama.cpp's state of the sliding-window layers for that sequence


@dataclass(frozen=True, slots=True)
class KvSplit:
    """What one cell costs (f16) in the full-attention layers and in the sliding-window layers."""

    full: int
    window: int


class Checkpoints:
    """Per KV handle, the checkpoints it can be continued from, in position order."""

    def __init__(self, every: int = CHECKPOINT_EVERY, most: int = MAX_CHECKPOINTS) -> None:
        self.every = every
        self.most = max(1, most)
        self._by: dict[int, list[Checkpoint]] = {}
        self._wanted: dict[int, int] = {}

    def positions(self, handle: int) -> list[int]:
        return [c.pos for c in self._by.get(handle, ())]

    def want(self, handle: int, pos: int) -> None:
        """``handle`` shares its first ``pos`` tokens with a cached prompt but had to read them:
        a checkpoint there lets the next prompt that shares them (a system prompt) continue."""
        if pos > 0:
            self._wanted[handle] = pos

    def _places(self, handle: int, tail: int) -> set[int]:
        places = {tail - back for back in TAIL_OFFSETS if tail - back > 0} | {tail}
        if wanted := self._wanted.get(handle):
            places.add(wanted)
        return places

    def cut(self, handle: int, n_past: int, take: int, tail: int) -> int:
        """The prompt tokens to read now, at most ``take``, so the chunk ends at the next place a
        checkpoint is due (a multiple of ``every``, near the tail, a wanted place) rather than past."""
        boundary = (n_past // self.every + 1) * self.every
        for place in self._places(handle, tail):
            if n_past < place < boundary:
                boundary = place
        return min(take, boundary - n_past)

    def due(self, handle: int, n_past: int, tail: int) -> bool:
        """A sequence that has read ``n_past`` prompt tokens takes one now: at every multiple of
        ``every`` up to ``tail``, a few tokens before ``tail`` (a prompt that shares all but its
        last question), at a wanted place, and at ``tail`` (the last place a prompt that starts with
        this one continues from: the engine always reads a prompt's last tokens)."""
        if n_past <= 0 or n_past > tail or n_past in self.positions(handle):
            return False
        return n_past % self.every == 0 or n_past in self._places(handle, tail)

    def add(self, handle: int, checkpoint: Checkpoint) -> None:
        """Keep ``checkpoint``; past ``most``, one goes where they lie densest (the one whose
        neighbours are closest), never one of the last ``PROTECTED`` (those near the prompt's end,
        where the next request parts from it or a chat continues)."""
        kept = [c for c in self._by.get(handle, ()) if c.pos != checkpoint.pos]
        kept.append(checkpoint)
        kept.sort(key=lambda c: c.pos)
        while len(kept) > self.most:
            # the first stays too while another can go: it covers the prompts' common start
            movable = range(1, len(kept) - PROTECTED) or range(1)
            spans = {i: kept[i + 1].pos - (kept[i - 1].pos if i else 0) for i in movable}
            del kept[max(movable, key=lambda i: (-spans[i], i))]  # the narrowest, the later of equals
        self._by[handle] = kept

    def best(self, handle: int, limit: int) -> Checkpoint | None:
        """The latest checkpoint of ``handle`` at or before position ``limit``."""
        found = None
        for c in self._by.get(handle, ()):
            if c.pos <= limit:
                found = c
        return found

    def inherit(self, src: int, dst: int, upto: int) -> None:
        """``dst`` took over ``src``'s first ``upto`` tokens: their checkpoints hold for it too
        (the same bytes, not copied)."""
        self._by[dst] = [c for c in self._by.get(src, ()) if c.pos <= upto]

    def drop(self, handle: int) -> None:
        self._by.pop(handle, None)
        self._wanted.pop(handle, None)

    def bytes(self, handles: Iterable[int] | None = None) -> int:
        """Memory the checkpoints of ``handles`` (all, by default) take, shared ones once."""
        chosen = self._by if handles is None else {h: self._by.get(h, []) for h in handles}
        seen = {id(c.data): len(c.data) for cps in chosen.values() for c in cps}
        return sum(seen.values())


def entry_handles(parallel: int, configured: int) -> int:
    """Cached prefixes kept as KV sequences beside ``parallel`` running ones: each holds a window
    of the sliding-window layers for good, so fewer than for other models (half the slots)."""
    return min(configured, max(1, parallel // 2)) if configured > 0 else 0


def window_cells(n_swa: int, handles: int, batch: int) -> int:
    """Cells llama.cpp gives the sliding-window layers: a window per sequence id and a batch."""
    cells = n_swa * handles + batch
    return -(-cells // _PAD) * _PAD


def reuse_point(shared: int, src_len: int, checkpoint: int | None) -> tuple[int, bool]:
    """Where a new sequence continues a source holding ``src_len`` tokens, of which it shares
    ``shared`` (already capped to leave tokens to read): (tokens reused, whether the checkpoint is
    restored). The source's own window serves only at its end; before it, a checkpoint must."""
    if shared <= 0:
        return 0, False
    if shared == src_len:
        return shared, False
    if checkpoint is not None and 0 < checkpoint <= shared:
        return checkpoint, True
    return 0, False


def kv_split(model: object, n_ctx_probe: int = _PROBE_CELLS) -> KvSplit:
    """Measure, on a small throwaway context, what a cell costs in each kind of layer (llama.cpp
    tells which layers slide only as it allocates their KV)."""
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = n_ctx_probe
    params.n_batch = params.n_ubatch = 32
    params.n_seq_max = 1
    params.swa_full = False
    params.no_perf = True
    with logs.buffer_sizes() as sizes:
        ctx = llama_cpp.llama_init_from_model(model, params)
    if not ctx:
        raise RuntimeError("llama.cpp could not create a probe context")
    llama_cpp.llama_free(ctx)
    window = sizes.get("KV SWA", 0)
    return KvSplit(
        full=(sizes.get("KV", 0) - window) // max(1, sizes.get("KV cells", 1)),
        window=window // max(1, sizes.get("KV SWA cells", 1)),
    )
