"""The engine with the real embedded model, in process: continuous batching, prefix cache,
cancellation and deadlines.

Greedy outputs are compared the way vLLM's own tests compare them (``check_logprobs_close``):
token by token, and where two runs first part, each one's token must be among the other's five
most likely. llama.cpp's CPU kernels do not give bit-identical logits for a sequence decoded alone
and the same sequence decoded beside others (docs/performance.md, "Determinism"): a near-tie may
then fall either way, after which the texts differ legitimately. A wrong KV cell, position or
sequence id does not pass this check: its tokens are not the model's top choices.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from lumbung.engines.llamacpp.backend import LocalModel, LocalModelSpec
from lumbung.engines.llamacpp.engine import EngineConfig
from lumbung.errors import ApiError
from lumbung.store.embedded import GEMMA, embedded_model_path
from lumbung.types import ChatRequest, Message, SamplingParams, TokenLogprob, Usage

SYSTEM = "You are the archivist of a rice barn cooperative in Java. Answer plainly. " * 12
TOPICS = ["rice", "rivers", "volcanoes", "trains", "markets", "bamboo", "monsoon", "kites"]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return embedded_model_path(tmp_path_factory.mktemp("engine-home"), GEMMA)


def load(path: Path, timeout: float = 600.0, **engine: object) -> LocalModel:
    config = EngineConfig(context_size=1024, threads=2, **engine)  # type: ignore[arg-type]
    return LocalModel(LocalModelSpec(id="m", path=path, engine=config), timeout)


@pytest.fixture(scope="module")
def engine8(model_path: Path) -> Iterator[LocalModel]:
    model = load(model_path, parallel=8)
    yield model
    model.close()


class Run:
    def __init__(self) -> None:
        self.text = ""
        self.logprobs: list[TokenLogprob] = []
        self.usage: Usage | None = None
        self.finish: str | None = None


async def generate(model: LocalModel, user: str, n: int, system: str = SYSTEM) -> Run:
    request = ChatRequest(
        model="m",
        messages=[Message(role="system", content=system), Message(role="user", content=user)],
        sampling=SamplingParams(temperature=0, max_tokens=n, logprobs=5),
    )
    run = Run()
    async for chunk in model.stream(request):
        run.text += chunk.text
        run.logprobs += chunk.logprobs
        if chunk.finish_reason:
            run.finish, run.usage = chunk.finish_reason, chunk.usage
    return run


def assert_close(a: Run, b: Run) -> None:
    """Same greedy tokens until the first near-tie; there, each token is in the other's top 5."""
    assert a.logprobs and b.logprobs
    for i, (x, y) in enumerate(zip(a.logprobs, b.logprobs, strict=False)):
        if x.bytes == y.bytes:
            assert x.top[0][0] == x.token, f"token {i} is not the greedy choice"
            continue
        assert x.token in [t for t, _ in y.top], f"token {i}: {x.token!r} not in {y.top}"
        assert y.token in [t for t, _ in x.top], f"token {i}: {y.token!r} not in {x.top}"
        return
    if a.finish == b.finish == "length":
        assert a.text == b.text


async def test_eight_concurrent_streams_each_match_their_run_alone(engine8: LocalModel) -> None:
    alone = [await generate(engine8, f"Tell me about {t}.", 20, system=f"Topic: {t}.") for t in TOPICS]
    together = await asyncio.gather(
        *(generate(engine8, f"Tell me about {t}.", 20, system=f"Topic: {t}.") for t in TOPICS)
    )
    for solo, batched in zip(alone, together, strict=True):
        assert batched.finish == "length" and batched.usage and batched.usage.completion_tokens == 20
        assert len(batched.logprobs) == 20
        assert_close(solo, batched)
    assert engine8.engine.active == 0 and engine8.engine.queued == 0


async def test_logprobs_are_the_models_distribution(engine8: LocalModel) -> None:
    run = await generate(engine8, "Count to three.", 6)
    for lp in run.logprobs:
        assert lp.logprob <= 0 and len(lp.top) == 5
        assert [p for _, p in lp.top] == sorted((p for _, p in lp.top), reverse=True)
        assert lp.logprob == pytest.approx(lp.top[0][1])  # greedy: the chosen token is the top one
        assert bytes(lp.bytes or []).decode("utf-8", "replace") == lp.token
    assert "".join(lp.token for lp in run.logprobs).startswith(run.text[:5])


async def test_prefix_cache_hit_matches_a_miss(model_path: Path, engine8: LocalModel) -> None:
    cold = await generate(engine8, "Which barn is oldest?", 12)
    warm = await generate(engine8, "Which barn is oldest?", 12)
    # Shares the system prompt only. Gemma 3's sliding-window layers continue from a checkpoint
    # (swa.py): none lies inside this ~200-token system prompt yet; this request takes one where it
    # parted from the cached prompt, and the next one sharing the system prompt continues there.
    await generate(engine8, "Who keeps the keys?", 12)
    other = await generate(engine8, "Where is the well?", 12)
    assert cold.usage and warm.usage and other.usage
    assert warm.usage.cached_tokens == warm.usage.prompt_tokens - 2  # engine.RECOMPUTE_TOKENS
    assert other.usage.cached_tokens >= 150
    no_cache = load(model_path, parallel=1, cache_tokens=0)
    try:
        reference = await generate(no_cache, "Where is the well?", 12)
        assert reference.usage and reference.usage.cached_tokens == 0
    finally:
        no_cache.close()
    assert_close(cold, warm)
    assert_close(reference, other)


async def test_n_copies_of_one_prompt_share_its_prefill(engine8: LocalModel) -> None:
    before = engine8.engine.stats().cached_tokens
    runs = await asyncio.gather(
        *(generate(engine8, "Name a river.", 4, system="Rivers " * 80) for _ in range(4))
    )
    reused = sorted(r.usage.cached_tokens for r in runs if r.usage)
    assert len(reused) == 4 and all(c >= 80 for c in reused[1:])  # one reads the prompt, three reuse it
    assert engine8.engine.stats().cached_tokens - before >= 3 * 80


async def test_cached_prefix_beyond_the_sliding_window_stays_whole(model_path: Path) -> None:
    """Gemma 3 attends over a 512-token window in most layers, whose KV is kept window-sized: a
    cached prefix far past the window is continued from a context checkpoint (swa.py), exactly."""
    model = load(model_path, parallel=4)
    try:
        long_system = " ".join(f"Rule {i}: keep the grain dry." for i in range(80))  # ~820 tokens
        first = await generate(model, "Summarise the rules.", 8, system=long_system)
        # churn: another sequence takes and frees cells around the cached one (the cache keeps
        # parallel / 2 entries of a sliding-window model: this one and the cached one)
        await generate(model, "Tell me about rice.", 24, system="Topic: rice. " * 150)
        again = await generate(model, "List rule 3.", 12, system=long_system)
        # the shared system prompt, cut back to the checkpoint at 512 tokens
        assert first.usage and again.usage and again.usage.cached_tokens >= 512
        assert model.engine.checkpoints is not None
    finally:
        model.close()
    fresh = load(model_path, parallel=1, cache_tokens=0)
    try:
        reference = await generate(fresh, "List rule 3.", 12, system=long_system)
    finally:
        fresh.close()
    assert_close(reference, again)


async def test_a_cancelled_stream_frees_its_slot(model_path: Path) -> None:
    model = load(model_path, parallel=1, max_queue=1)
    try:
        request = ChatRequest(
            model="m",
            messages=[Message(role="user", content="Write a long story.")],
            sampling=SamplingParams(temperature=0, max_tokens=500),
        )
        stream = model.stream(request)
        await anext(stream)
        assert model.engine.active == 1
        await stream.aclose()  # what a client disconnect does
        done = await generate(model, "Hi", 3, system="Be brief.")
        assert done.finish == "length"
        assert model.engine.active == 0
    finally:
        model.close()


async def test_a_request_past_its_deadline_ends_with_a_timeout(model_path: Path) -> None:
    model = load(model_path, timeout=0.5, parallel=1)
    try:
        with pytest.raises(ApiError) as err:
            await generate(model, "Write a very long story about rice.", 1000)
        assert err.value.status == 504 and err.value.code == "timeout"
        assert model.engine.active == 0
    finally:
        model.close()
