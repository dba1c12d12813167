"""The sampler's greedy shortcut (an argmax over the logits row) picks exactly what llama.cpp's own
greedy sampler chain picks, on the real model's logits, step after step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import numpy as np
import pytest

from lumbung.engines.llamacpp.model import LlamaModel
from lumbung.engines.llamacpp.sampler import Sampler
from lumbung.store.embedded import GEMMA, embedded_model_path
from lumbung.types import SamplingParams


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaModel]:
    m = LlamaModel(Path(embedded_model_path(tmp_path_factory.mktemp("sampler-home"), GEMMA)))
    yield m
    m.close()


def test_greedy_argmax_equals_llama_cpps_greedy_chain(model: LlamaModel) -> None:
    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_threads, params.n_threads_batch = 512, 512, 2, 2
    ctx = llama_cpp.llama_init_from_model(model.ptr, params)
    batch = llama_cpp.llama_batch_init(512, 0, 1)
    fast = Sampler(SamplingParams(temperature=0.0), model.n_vocab)
    chain = Sampler(SamplingParams(temperature=0.0), model.n_vocab)
    chain.argmax = False  # llama.cpp's own chain (greedy sampler)
    assert fast.argmax
    try:
        for prompt in ("The rice barn of the village", "def fibonacci(n):", "1, 2, 3, 5, 8,"):
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
            tokens = model.tokenize(prompt, add_special=True)
            pos = 0
            for _ in range(24):
                for i, token in enumerate(tokens):
                    batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos + i, 1
                    batch.seq_id[i][0], batch.logits[i] = 0, i == len(tokens) - 1
                batch.n_tokens = len(tokens)
                assert llama_cpp.llama_decode(ctx, batch) == 0
                pos += len(tokens)
                picked = fast.sample(ctx, len(tokens) - 1)
                assert picked == chain.sample(ctx, len(tokens) - 1)
                tokens = [picked]
    finally:
        fast.close()
        chain.close()
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)


@pytest.mark.parametrize(
    "params",
    [SamplingParams(temperature=0.0, presence_penalty=0.5), SamplingParams(temperature=0.7)],
    ids=["penalised", "temperature"],
)
def test_anything_but_plain_greedy_keeps_the_chain(model: LlamaModel, params: SamplingParams) -> None:
    sampler = Sampler(params, model.n_vocab)
    try:
        assert not sampler.argmax
    finally:
        sampler.close()


def test_logit_bias_applies_on_the_greedy_shortcut_and_leaves_the_row_as_it_was() -> None:
    row = np.array([0.5, 3.0, 2.0, 2.9, -1.0], dtype=np.float32)
    before = row.copy()
    cases = {
        (): 1,  # no bias: the argmax
        ((1, -100.0),): 3,  # a ban: the runner-up
        ((4, 100.0),): 4,  # +100 forces the token
        ((2, 1.5),): 2,  # a nudge that makes 2 the largest
        ((2, 1.0),): 1,  # a tie (3.0): the lowest id, as llama.cpp's greedy sampler
        ((0, 2.5),): 0,  # a tie won by the biased token, the lower id
        ((2, 0.5),): 1,  # a nudge too small
        ((1, -100.0), (3, -100.0)): 2,
    }
    for bias, expected in cases.items():
        sampler = Sampler(SamplingParams(temperature=0.0, logit_bias=dict(bias)), len(row))
        try:
            assert sampler.argmax and sampler._argmax(row) == expected, bias
            assert np.array_equal(row, before)
        finally:
            sampler.close()


def test_logit_bias_bans_and_forces_tokens_on_the_real_model_through_both_paths(model: LlamaModel) -> None:
    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_threads, params.n_threads_batch = 256, 256, 2, 2
    ctx = llama_cpp.llama_init_from_model(model.ptr, params)
    batch = llama_cpp.llama_batch_init(256, 0, 1)
    try:
        tokens = model.tokenize("The capital of France is", add_special=True)
        for i, token in enumerate(tokens):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, i, 1
            batch.seq_id[i][0], batch.logits[i] = 0, i == len(tokens) - 1
        batch.n_tokens = len(tokens)
        assert llama_cpp.llama_decode(ctx, batch) == 0
        last = len(tokens) - 1

        def pick(bias: dict[int, float], *, chain: bool) -> int:
            sampler = Sampler(SamplingParams(temperature=0.0, logit_bias=bias), model.n_vocab)
            sampler.argmax = sampler.argmax and not chain
            try:
                return sampler.sample(ctx, last)
            finally:
                sampler.close()

        greedy = pick({}, chain=False)
        forced = model.tokenize(" banana", add_special=False)[0]
        for chain in (False, True):
            assert pick({}, chain=chain) == greedy
            assert pick({greedy: -100.0}, chain=chain) != greedy
            assert pick({forced: 100.0}, chain=chain) == forced
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
