"""Embeddings from a loaded GGUF: a llama.cpp context of its own with pooling on.

Separate from the generation engine's context (engine.py), so embedding never waits for a decode
step and never touches a generation KV cache; the two share the model weights, which llama.cpp only
reads. Calls run on a worker thread, one batch at a time (a lock owns the context); a request's
``stop`` event, set when its client leaves, ends it before its next batch.
"""

from __future__ import annotations

import asyncio
import ctypes
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import llama_cpp

from lumbung.engines.llamacpp.model import LlamaModel
from lumbung.errors import ContextLengthExceeded, EngineError, InvalidRequest

# Sequences packed into one decode; more inputs are embedded in several batches.
MAX_SEQUENCES = 16

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class EmbedderConfig:
    context_size: int = 2048  # most tokens in one input
    threads: int = 2
    # A generative model has no pooling of its own: its hidden states are averaged (mean pooling).
    # An embedding model's GGUF says how it pools (CLS, mean, last); None keeps that.
    pooling: int | None = llama_cpp.LLAMA_POOLING_TYPE_MEAN


def pooling_for(model: LlamaModel, embedding_model: bool) -> int | None:
    """An embedding model that names its pooling keeps it; anything else is mean-pooled."""
    if embedding_model and f"{model.architecture}.pooling_type" in model.metadata:
        return None
    return int(llama_cpp.LLAMA_POOLING_TYPE_MEAN)


class Embedder:
    """Owns one embedding ``llama_context``; ``embed`` returns L2-normalised vectors."""

    def __init__(self, model: LlamaModel, config: EmbedderConfig) -> None:
        self.model = model
        self.n_ctx = max(8, min(config.context_size, model.n_ctx_train or config.context_size))
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = self.n_ctx
        # A pooled sequence must fit in one micro-batch: batch and micro-batch hold a whole input.
        params.n_batch = self.n_ctx
        params.n_ubatch = self.n_ctx
        params.n_seq_max = MAX_SEQUENCES
        params.n_threads = config.threads
        params.n_threads_batch = config.threads
        params.embeddings = True
        params.kv_unified = True
        params.no_perf = True
        params.pooling_type = (
            llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED if config.pooling is None else config.pooling
        )
        self.ctx = llama_cpp.llama_init_from_model(model.ptr, params)
        if not self.ctx:
            raise EngineError(f"llama.cpp could not create an embedding context ({self.n_ctx} tokens)")
        if llama_cpp.llama_pooling_type(self.ctx) in (
            llama_cpp.LLAMA_POOLING_TYPE_NONE,
            llama_cpp.LLAMA_POOLING_TYPE_RANK,
        ):
            self.close()
            raise EngineError("this model pools no sentence embedding (pooling type none or rank)")
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.encoder_only = bool(
            llama_cpp.llama_model_has_encoder(model.ptr) and not llama_cpp.llama_model_has_decoder(model.ptr)
        )
        self.batch = llama_cpp.llama_batch_init(self.n_ctx, 0, MAX_SEQUENCES)
        self.dimensions = model.n_embd
        self.n_vocab = model.n_vocab
        self.batches = 0  # decoded so far (a counter for status and tests)
        self._lock = threading.Lock()

    def close(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            if getattr(self, "batch", None) is not None:
                llama_cpp.llama_batch_free(self.batch)
                self.batch = None
            if self.ctx:
                llama_cpp.llama_free(self.ctx)
                self.ctx = None

    def tokenize(self, inputs: list[str]) -> list[list[int]]:
        out = []
        for i, text in enumerate(inputs):
            if not text:
                raise InvalidRequest(
                    f"Invalid value for 'input[{i}]': an input must not be empty.", param="input"
                )
            tokens = self.model.tokenize(text, add_special=True, parse_special=False)
            if len(tokens) > self.n_ctx:
                raise ContextLengthExceeded(
                    f"This model's maximum context length is {self.n_ctx} tokens, however input {i} "
                    f"has {len(tokens)} tokens. Please reduce the length of the input.",
                    param="input",
                )
            out.append(tokens)
        return out

    def check_tokens(self, inputs: list[list[int]]) -> list[list[int]]:
        """Token ids sent as input: each in the vocabulary, each input non-empty and within context."""
        for i, tokens in enumerate(inputs):
            if not tokens:
                raise InvalidRequest(
                    f"Invalid value for 'input[{i}]': an input must not be empty.", param="input"
                )
            for j, token in enumerate(tokens):
                if not 0 <= token < self.n_vocab:
                    raise InvalidRequest(
                        f"Invalid value for 'input[{i}][{j}]': token id {token} is not in the model's "
                        f"vocabulary (0 to {self.n_vocab - 1}).",
                        param="input",
                    )
            if len(tokens) > self.n_ctx:
                raise ContextLengthExceeded(
                    f"This model's maximum context length is {self.n_ctx} tokens, however input {i} "
                    f"has {len(tokens)} tokens. Please reduce the length of the input.",
                    param="input",
                )
        return inputs

    def embed_tokens(self, inputs: list[list[int]], stop: threading.Event | None = None) -> list[list[float]]:
        """Blocking: call from a worker thread. Once ``stop`` is set, no further batch starts (the
        vectors so far are returned; the caller has gone and discards them)."""
        vectors: list[list[float]] = []
        with self._lock:
            if not self.ctx:
                raise EngineError("the embedding context is closed")
            start = 0
            while start < len(inputs) and not (stop is not None and stop.is_set()):
                end, total = start, 0
                while (
                    end < len(inputs)
                    and end - start < MAX_SEQUENCES
                    and total + len(inputs[end]) <= self.n_ctx
                ):
                    total += len(inputs[end])
                    end += 1
                vectors.extend(self._embed_batch(inputs[start:end]))
                start = end
        return vectors

    def _embed_batch(self, group: list[list[int]]) -> list[list[float]]:
        batch = self.batch
        n = 0
        for seq, tokens in enumerate(group):
            for pos, token in enumerate(tokens):
                batch.token[n] = token
                batch.pos[n] = pos
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = seq
                batch.logits[n] = True  # with pooling, marks the tokens whose states are pooled
                n += 1
        batch.n_tokens = n
        if self.mem:
            llama_cpp.llama_memory_clear(self.mem, True)
        rc = (llama_cpp.llama_encode if self.encoder_only else llama_cpp.llama_decode)(self.ctx, batch)
        self.batches += 1
        if rc != 0:
            raise EngineError(f"llama.cpp failed to embed a batch (code {rc})")
        out = []
        for seq in range(len(group)):
            ptr = llama_cpp.llama_get_embeddings_seq(self.ctx, seq)
            if not ptr:
                raise EngineError("llama.cpp returned no pooled embedding")
            values = ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float))[: self.dimensions]
            out.append(_normalise(values))
        return out


def _normalise(values: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values] if norm > 0 else list(values)


async def run_stoppable(work: Callable[[list[list[int]], threading.Event], T], inputs: list[list[int]]) -> T:
    """``work(inputs, stop)`` on a worker thread. If the caller is cancelled (its client hung up),
    ``stop`` is set and the work is waited for, so what it holds is free when the caller is done."""
    stop = threading.Event()
    future = asyncio.get_running_loop().run_in_executor(None, work, inputs, stop)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        stop.set()
        await asyncio.wait([future])  # one batch at most
        if not future.cancelled():
            future.exception()  # retrieved: a failure after the client left is nobody's to see
        raise
