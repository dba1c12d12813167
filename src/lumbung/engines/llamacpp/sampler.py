"""A llama.cpp sampler chain per sequence, built from the core SamplingParams."""

from __future__ import annotations

import ctypes
import random
from collections.abc import Sequence
from typing import Any

import llama_cpp
import numpy as np

from lumbung.types import SamplingParams

# Penalties look back over the generated tokens (OpenAI's "text so far" of the answer), up to this.
PENALTY_WINDOW = 4096


class Sampler:
    """Owns one ``llama_sampler`` chain; ``sample`` picks and accepts the next token.

    Plain greedy decoding (no penalties, no constraint) skips the chain: llama.cpp's sampling copies
    the whole vocabulary into a candidate array first (262k entries for Gemma 3: 650 us per token on
    the 2-core dev machine, once per sequence per step, while both cores' decode threads wait), where
    an argmax over the logits row takes 56 us and picks the same token (the first of equal maxima, as
    llama.cpp's greedy sampler does; tests/e2e/test_engine_sampler.py)."""

    def __init__(self, params: SamplingParams, n_vocab: int, *, pre: Sequence[Any] = ()) -> None:
        self.n_vocab = n_vocab
        penalties = bool(params.presence_penalty or params.frequency_penalty or params.repeat_penalty != 1.0)
        self.argmax = params.temperature <= 0.0 and not pre and not penalties
        # OpenAI's logit_bias, -100 a ban: -inf, so no logit, however large, brings the token back.
        tokens = sorted(params.logit_bias)
        self.bias_ids = np.array(tokens, dtype=np.int64)
        self.bias = np.array([params.logit_bias[t] for t in tokens], dtype=np.float32)
        self.bias[self.bias <= -100.0] = -np.inf
        chain_params = llama_cpp.llama_sampler_chain_default_params()
        chain_params.no_perf = True
        self.ptr = llama_cpp.llama_sampler_chain_init(chain_params)
        self._pre = tuple(pre)  # Python-implemented samplers must outlive the chain that calls them
        for extra in self._pre:  # constraints (grammars) go first, so later stages see masked logits
            llama_cpp.llama_sampler_chain_add(self.ptr, getattr(extra, "ptr", extra))
        add = self._add
        if tokens:
            pairs = (llama_cpp.llama_logit_bias * len(tokens))()
            for pair, token, bias in zip(pairs, tokens, self.bias.tolist(), strict=True):
                pair.token, pair.bias = token, bias
            add(llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(tokens), pairs))  # copies the pairs
        if penalties:
            add(
                llama_cpp.llama_sampler_init_penalties(
                    n_vocab,
                    PENALTY_WINDOW,
                    params.repeat_penalty,
                    params.frequency_penalty,
                    params.presence_penalty,
                )
            )
        if params.temperature <= 0.0:
            add(llama_cpp.llama_sampler_init_greedy())
            return
        if params.top_k > 0:
            add(llama_cpp.llama_sampler_init_top_k(params.top_k))
        if params.top_p < 1.0:
            add(llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
        if params.min_p > 0.0:
            add(llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
        add(llama_cpp.llama_sampler_init_temp(params.temperature))
        seed = params.seed if params.seed is not None else random.getrandbits(32)
        add(llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))

    def _add(self, stage: Any) -> None:
        llama_cpp.llama_sampler_chain_add(self.ptr, stage)

    def sample(self, ctx: ctypes.c_void_p, index: int) -> int:
        if self.argmax:
            row = llama_cpp.llama_get_logits_ith(ctx, index)
            return self._argmax(np.ctypeslib.as_array(row, shape=(self.n_vocab,)))
        return int(llama_cpp.llama_sampler_sample(self.ptr, ctx, index))

    def _argmax(self, row: np.ndarray) -> int:
        """The greedy choice with the biases added, touching only the biased entries of the row (which
        logprobs read afterwards, unbiased). Ties go to the lowest id, as llama.cpp's greedy sampler."""
        if not self.bias_ids.size:
            return int(np.argmax(row))
        ids = self.bias_ids
        saved = row[ids].copy()
        row[ids] = -np.inf
        try:
            best = int(np.argmax(row))
        finally:
            row[ids] = saved
        biased = saved + self.bias
        j = int(np.argmax(biased))  # ids are sorted: the first maximum is the lowest id
        if biased[j] > row[best] or (biased[j] == row[best] and ids[j] < best) or row[best] == -np.inf:
            return int(ids[j])
        return best

    def close(self) -> None:
        if self.ptr is not None:
            llama_cpp.llama_sampler_free(self.ptr)
            self.ptr = None
