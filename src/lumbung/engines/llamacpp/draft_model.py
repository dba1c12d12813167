"""Speculative drafts from a second, smaller model with the served model's vocabulary.

Where answers do not copy their input, prompt lookup (speculative.py) finds nothing to guess; a small
model of the same family can still guess what the big one will say. ``DraftModel`` loads it with a
llama.cpp context of its own (one KV sequence per engine slot) and, for a sequence, proposes up to
``max_draft`` tokens greedily. The engine verifies them exactly as it verifies n-gram drafts (same
batch, same sampler, same rollback), so the answer is the served model's own; a draft only decides
how many tokens one step yields.

The draft model's KV follows each sequence's tokens lazily: before drafting, the cells past the
longest common prefix of what the draft slot holds and the sequence's tokens (a rejected draft, or
another request's text) are dropped and the missing tokens decoded, in batches. Its cost is a second
model's weights and KV cache in memory, and a draft-model decode per draft token on the engine thread.
"""

from __future__ import annotations

import logging
from pathlib import Path

import llama_cpp

from lumbung.engines.llamacpp.model import LlamaModel
from lumbung.engines.llamacpp.prefix_cache import common_prefix
from lumbung.errors import EngineError, ModelFileError

log = logging.getLogger(__name__)

VOCAB_SAMPLES = 256  # token texts compared between the two vocabularies (plus the special tokens)


def check_vocab(target: LlamaModel, draft: LlamaModel) -> None:
    """Refuse a draft model whose tokens mean other text than the served model's: its drafts would be
    another language to the verifier (every one rejected, or worse, accepted by accident)."""
    name = draft.path.name
    if draft.n_vocab != target.n_vocab:
        raise ModelFileError(
            f"draft model {name} has a vocabulary of {draft.n_vocab} tokens, the served model "
            f"{target.path.name} {target.n_vocab}: a draft model must use the served model's tokenizer"
        )
    step = max(1, target.n_vocab // VOCAB_SAMPLES)
    ids = {*range(0, target.n_vocab, step), target.n_vocab - 1, target.bos, target.eos}
    for token in sorted(t for t in ids if 0 <= t < target.n_vocab):
        if draft.token_text(token) != target.token_text(token):
            raise ModelFileError(
                f"draft model {name}: token {token} is {draft.token_text(token)!r}, in the served "
                f"model {target.path.name} {target.token_text(token)!r}: a draft model must use the "
                "served model's tokenizer"
            )
    if draft.bos != target.bos or draft.eos != target.eos:
        raise ModelFileError(f"draft model {name}: its BOS/EOS tokens are not the served model's")


class DraftModel:
    """The draft model and its context; used by the engine thread only (``close`` after it ends)."""

    def __init__(
        self,
        path: Path,
        target: LlamaModel,
        *,
        slots: int,
        slot_cells: int,
        batch: int,
        threads: int,
        extra_buffers: bool = True,
    ) -> None:
        self.model = LlamaModel(path, extra_buffers=extra_buffers)
        try:
            check_vocab(target, self.model)
            if llama_cpp.llama_model_is_recurrent(self.model.ptr) or llama_cpp.llama_model_is_hybrid(
                self.model.ptr
            ):
                raise ModelFileError(
                    f"draft model {path.name} has recurrent layers, whose state cannot drop a rejected draft"
                )
            params = llama_cpp.llama_context_default_params()
            params.n_ctx = slots * slot_cells
            params.n_batch = params.n_ubatch = batch
            params.n_seq_max = slots
            params.n_threads = params.n_threads_batch = threads
            params.kv_unified = True
            params.swa_full = True  # a sliding-window draft model must drop cells at any position
            params.no_perf = True
            self.ctx = llama_cpp.llama_init_from_model(self.model.ptr, params)
            if not self.ctx:
                raise ModelFileError(f"llama.cpp could not create a context for draft model {path.name}")
        except BaseException:
            self.model.close()
            raise
        self.n_ctx = int(llama_cpp.llama_n_ctx(self.ctx))
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.batch_size = batch
        self.batch = llama_cpp.llama_batch_init(batch, 0, 1)
        self.greedy = llama_cpp.llama_sampler_init_greedy()
        kv_bytes = self.n_ctx * self.model.kv_bytes_per_cell
        self.memory_bytes = self.model.size_bytes + kv_bytes  # what `lumbung ps` adds for it
        self.held: list[list[int]] = [[] for _ in range(slots)]  # the tokens whose KV each slot holds
        self._free = list(range(slots))
        self.slot_cells = slot_cells
        log.info("draft model %s: %d slots, KV %.0f MiB", path.name, slots, kv_bytes / 2**20)

    def drafter(self, tokens: list[int], max_draft: int) -> ModelDrafter:
        """A drafter for a sequence whose tokens are ``tokens`` (the engine appends to that list), on
        the free slot holding the longest prefix of them."""
        slot = max(self._free, key=lambda s: common_prefix(self.held[s], tokens))
        self._free.remove(slot)
        return ModelDrafter(self, slot, tokens, max_draft)

    def release(self, slot: int) -> None:
        self._free.append(slot)

    def close(self) -> None:
        if self.ctx is None:
            return
        llama_cpp.llama_sampler_free(self.greedy)
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)
        self.ctx = None
        self.model.close()

    def propose(self, slot: int, tokens: list[int], limit: int) -> list[int]:
        """Up to ``limit`` tokens the draft model would say after ``tokens``, greedily."""
        limit = min(limit, self.slot_cells - len(tokens))
        if limit <= 0 or not tokens:
            return []
        self._sync(slot, tokens)
        held = self.held[slot]
        out: list[int] = []
        while True:
            token = int(llama_cpp.llama_sampler_sample(self.greedy, self.ctx, -1))
            out.append(token)
            if len(out) >= limit or llama_cpp.llama_vocab_is_eog(self.model.vocab, token):
                return out
            self._decode(slot, [token], len(held))
            held.append(token)

    def _sync(self, slot: int, tokens: list[int]) -> None:
        """Make the slot hold ``tokens`` with the last one's logits: keep the common prefix, drop
        the rest, decode what is missing (the last token always: its logits are wanted now)."""
        held = self.held[slot]
        keep = min(common_prefix(held, tokens), len(tokens) - 1)
        if not llama_cpp.llama_memory_seq_rm(self.mem, slot, keep, -1):
            llama_cpp.llama_memory_seq_rm(self.mem, slot, -1, -1)  # could not cut there: start over
            keep = 0
        del held[keep:]
        for start in range(keep, len(tokens), self.batch_size):
            chunk = tokens[start : start + self.batch_size]
            self._decode(slot, chunk, start)
            held.extend(chunk)

    def _decode(self, slot: int, tokens: list[int], pos: int) -> None:
        batch = self.batch
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = pos + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = slot
            batch.logits[i] = i == len(tokens) - 1
        batch.n_tokens = len(tokens)
        rc = llama_cpp.llama_decode(self.ctx, batch)
        if rc != 0:
            # The slot's KV is unknown now: start it over next time.
            llama_cpp.llama_memory_seq_rm(self.mem, slot, -1, -1)
            self.held[slot].clear()
            raise EngineError(f"the draft model failed to decode (llama_decode returned {rc})")


class ModelDrafter:
    """One sequence's drafts from the draft model (the engine's ``Drafter``)."""

    def __init__(self, model: DraftModel, slot: int, tokens: list[int], max_draft: int) -> None:
        self.model = model
        self.slot = slot
        self.tokens = tokens
        self.max_draft = max_draft
        self.length = max_draft  # the next draft's length, adapted to how drafts fare

    def draft(self, limit: int) -> list[int]:
        return self.model.propose(self.slot, self.tokens, min(limit, self.length))

    def update(self, drafted: int, accepted: int) -> None:
        """Longer drafts while they are taken whole, shorter after a miss: each draft token costs a
        draft-model decode and a batch row."""
        if accepted == drafted:
            self.length = min(self.max_draft, self.length * 2)
        else:
            self.length = max(1, accepted + 1)

    def close(self) -> None:
        if self.slot >= 0:
            self.model.release(self.slot)
            self.slot = -1
