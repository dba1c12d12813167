"""Speculative decoding with a draft model (draft_model.py), with the real embedded models in process.

The only pair of models here with one tokenizer is SmolLM2 135M with itself: as its own draft model its
greedy guesses are the served model's choices, so nearly every draft is taken, and the answers must be
the ones plain decoding gives (compared as test_engine_speculative.py compares). Gemma 3's vocabulary is
another one: as a draft model for SmolLM2 it is refused when the model loads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from lumbung.config import SpeculativeConfig
from lumbung.engines.llamacpp.backend import (
    LocalModel,
    LocalModelSpec,
    _speculative_facts,
    memory_breakdown,
)
from lumbung.engines.llamacpp.engine import EngineConfig
from lumbung.errors import ModelFileError
from lumbung.store.embedded import GEMMA, SMOLLM2, embedded_model_path
from tests.e2e.test_engine_batching import assert_close
from tests.e2e.test_engine_speculative import DOC, assert_kv_exact, generate, idle, request

PROMPTS = (
    "Write a poem about rice.",
    "What is the capital of Indonesia?",
    f"Copy this text exactly:\n\n{DOC}",
    "List three fruits that grow in Java.",
    "Explain what a ferry is in one sentence.",
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("draft-home")


def spec_with_draft(home: Path, draft: Path, parallel: int = 2) -> LocalModelSpec:
    config = EngineConfig(
        context_size=512,
        threads=2,
        parallel=parallel,
        speculative=SpeculativeConfig(mode="draft", model=str(draft), max_draft=4),
    )
    return LocalModelSpec(id="m", path=embedded_model_path(home, SMOLLM2), engine=config)


@pytest.fixture(scope="module")
def model(home: Path) -> Iterator[LocalModel]:
    loaded = LocalModel(spec_with_draft(home, embedded_model_path(home, SMOLLM2)), 600.0)
    yield loaded
    draft = loaded.engine.draft
    loaded.close()
    assert draft is not None and draft.ctx is None and draft.model.ptr is None  # freed on unload


async def test_greedy_text_is_the_same_with_and_without_the_draft_model(model: LocalModel) -> None:
    stats = model.engine.stats().speculation
    assert stats is not None
    accepted = stats.accepted
    for prompt in PROMPTS:
        plain = await generate(model, request(prompt, 24, False))
        drafted = await generate(model, request(prompt, 24, None))  # the model's: draft mode
        assert plain.usage and drafted.usage
        assert_close(plain, drafted)
    # The draft model is the served model: its greedy guesses are taken, nearly all of them.
    assert stats.accepted - accepted > 40
    facts = _speculative_facts(model)
    assert facts is not None and facts["mode"] == "draft" and facts["acceptance_rate"] > 0.8
    # Its cost: a second model's weights and KV cache, shown apart in `lumbung ps`.
    draft = model.engine.draft
    assert draft is not None and memory_breakdown(model)["draft_model"] == draft.memory_bytes
    assert draft.memory_bytes > model.model.size_bytes
    await idle(model.engine)
    assert_kv_exact(model.engine)


async def test_two_streams_draft_in_one_batch(model: LocalModel) -> None:
    prompts = PROMPTS[:2]
    plain = [await generate(model, request(p, 24, False)) for p in prompts]
    together = await asyncio.gather(*(generate(model, request(p, 24, True)) for p in prompts))
    for alone, batched in zip(plain, together, strict=True):
        assert_close(alone, batched)
    await idle(model.engine)
    assert_kv_exact(model.engine)


def test_a_draft_model_with_another_vocabulary_is_refused_at_load(home: Path) -> None:
    gemma = embedded_model_path(home, GEMMA)
    with pytest.raises(ModelFileError, match="must use the served model's tokenizer"):
        LocalModel(spec_with_draft(home, gemma), 600.0)
