"""The sampler's greedy shortcut (an argmax over the logits row) picks exactly what llama.cpp's own
greedy sampler chain picks, on the real model's logits, step after step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import pytest

from lumbung.engines.llamacpp.model import LlamaModel
from lumbung.engines.llamacpp.sampler import Sampler
from lumbung.store.embedded import embedded_model_path
from lumbung.types import SamplingParams


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaModel]:
    m = LlamaModel(Path(embedded_model_path(tmp_path_factory.mktemp("sampler-home"))))
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
