"""Speculative decoding (n-gram drafts) in the engine, with the real embedded SmolLM2 in process.

Speculation must not change the answer: greedy text with drafts is compared with the same request
decoded plainly the way the batching tests compare (test_engine_batching.py: the same tokens until
the first near-tie, each there among the other's five most likely; docs/performance.md,
"Determinism"). Rejected drafts must leave no KV cell behind, and a request cancelled while its
drafts are verified must free its slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any

import llama_cpp
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lumbung.config import SpeculativeConfig
from lumbung.engines.llamacpp.backend import LocalModel, LocalModelSpec, _speculative_facts
from lumbung.engines.llamacpp.engine import Engine, EngineConfig
from lumbung.store.embedded import SMOLLM2, embedded_model_path
from lumbung.types import ChatRequest, Chunk, Message, ResponseFormat, SamplingParams
from tests.e2e.test_engine_batching import Run, assert_close

WORDS = (
    "rice",
    "barn",
    "river",
    "bamboo",
    "kite",
    "market",
    "volcano",
    "train",
    "monsoon",
    "harbour",
    "spice",
    "batik",
    "gamelan",
    "temple",
    "mango",
    "ferry",
    "village",
    "lantern",
)
DOC = (
    "Invoice 4471 from Toko Sumber Rejeki, Jalan Malioboro 12, Yogyakarta. Items: 3 sacks of rice at "
    "250,000 rupiah each, 2 crates of bananas at 80,000 rupiah each, 1 bamboo mat at 45,000 rupiah. "
    "Delivery on 12 March by truck. Contact: Ibu Sari, phone 0812 3456 7890."
)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalModel]:
    path = embedded_model_path(tmp_path_factory.mktemp("spec-home"), SMOLLM2)
    config = EngineConfig(
        context_size=1024, threads=2, parallel=4, speculative=SpeculativeConfig(mode="ngram", max_draft=8)
    )
    loaded = LocalModel(LocalModelSpec(id="m", path=path, engine=config), 600.0)
    yield loaded
    loaded.close()


def request(user: str, n: int, speculative: bool | None, **sampling: Any) -> ChatRequest:
    params = SamplingParams(**({"temperature": 0.0} | sampling), max_tokens=n, logprobs=5)
    params.speculative = speculative
    return ChatRequest(model="m", messages=[Message(role="user", content=user)], sampling=params)


async def generate(model: LocalModel, req: ChatRequest) -> Run:
    run = Run()
    async for chunk in model.stream(req):
        run.text += chunk.text
        run.logprobs += chunk.logprobs
        if chunk.finish_reason:
            run.finish, run.usage = chunk.finish_reason, chunk.usage
    return run


def assert_kv_exact(engine: Engine) -> None:
    """Every KV sequence holds exactly the cells the engine thinks it does: no draft left behind.
    (Read between requests, when the engine thread is idle.)"""
    for handle in range(engine.config.parallel + engine.config.cache_entries):
        length = engine.ledger.length(handle)
        for seq_id in engine._ids(handle):
            assert llama_cpp.llama_memory_seq_pos_max(engine.mem, seq_id) == length - 1, handle


async def idle(engine: Engine) -> None:
    for _ in range(600):
        if engine.active == 0 and engine.queued == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the engine kept the sequence")


@st.composite
def copying_prompts(draw: st.DrawFn) -> str:
    """Prompts whose answers copy spans of them (the case drafts are for), and some that do not."""
    words = draw(st.lists(st.sampled_from(WORDS), min_size=4, max_size=30))
    text = " ".join(words)
    how = draw(
        st.sampled_from(["Copy this text exactly", "Repeat after me", "Fix the spelling", "Summarise"])
    )
    return f"{how}:\n\n{text}"


# Each example decodes twice on the CPU: few examples, no shrinking (a failure names its prompt).
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    phases=(Phase.generate,),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(prompt=copying_prompts())
@pytest.mark.timeout(900)  # a couple of seconds an example alone; the shared machine may be busy
def test_greedy_text_is_the_same_with_and_without_drafts(model: LocalModel, prompt: str) -> None:
    async def both() -> tuple[Run, Run]:
        plain = await generate(model, request(prompt, 32, False))
        spec = await generate(model, request(prompt, 32, True))
        return plain, spec

    plain, spec = asyncio.run(both())
    assert spec.usage and plain.usage
    assert_close(plain, spec)


async def test_drafts_are_taken_and_rejected_ones_leave_no_kv_behind(model: LocalModel) -> None:
    engine = model.engine
    before = engine.stats().speculation
    assert before is not None
    accepted = before.accepted
    plain = await generate(model, request(f"Copy this text exactly:\n\n{DOC}", 80, False))
    spec = await generate(model, request(f"Copy this text exactly:\n\n{DOC}", 80, None))  # the model's
    assert_close(plain, spec)
    after = engine.stats().speculation
    assert after is not None and after.accepted - accepted > 20  # the copy was drafted
    facts = _speculative_facts(model)  # as /v1/models and `lumbung ps` show it
    assert facts is not None and facts["mode"] == "ngram" and 0 < facts["acceptance_rate"] <= 1
    # A prompt whose answer copies little: most drafts are rejected, and their cells removed.
    for topic in ("rice", "kites", "ferries"):
        out = await generate(model, request(f"Write a poem about {topic}.", 60, True))
        assert out.finish == "length"
    stats = engine.stats().speculation
    assert stats is not None and stats.drafted - stats.accepted > 10
    await idle(engine)
    assert_kv_exact(engine)
    # The next tokens after a rejected draft are the model's own: a follow-up request that reuses the
    # speculating sequence's cells from the prefix cache continues as one computed afresh.
    follow = f"Copy this text exactly:\n\n{DOC}"
    warm = await generate(model, request(follow, 80, False))
    assert warm.usage and warm.usage.cached_tokens > 0
    assert_close(plain, warm)


async def test_several_streams_speculate_in_one_batch(model: LocalModel) -> None:
    prompts = [f"Copy this text exactly:\n\n{DOC[i * 40 :]}" for i in range(4)]
    plain = [await generate(model, request(p, 40, False)) for p in prompts]
    together = await asyncio.gather(*(generate(model, request(p, 40, True)) for p in prompts))
    for alone, batched in zip(plain, together, strict=True):
        assert_close(alone, batched)
    await idle(model.engine)
    assert_kv_exact(model.engine)


async def test_constrained_output_is_the_same_with_drafts(model: LocalModel) -> None:
    schema = {
        "type": "object",
        "properties": {"shop": {"type": "string"}, "city": {"type": "string"}, "phone": {"type": "string"}},
        "required": ["shop", "city", "phone"],
        "additionalProperties": False,
    }
    runs = []
    for speculative in (False, True):
        req = request(f"Extract shop, city and phone as JSON:\n\n{DOC}", 80, speculative)
        req.response_format = ResponseFormat(type="json_schema", schema=schema, name="invoice", strict=True)
        runs.append(await generate(model, req))
    assert runs[0].text == runs[1].text and runs[0].finish == "stop"


async def test_cancelled_while_verifying_frees_the_slot(model: LocalModel) -> None:
    engine = model.engine
    prompt = f"Copy this text exactly:\n\n{DOC}\n\n{DOC}"
    reference = await generate(model, request(prompt, 60, False))
    stats = engine.stats().speculation
    assert stats is not None
    steps = stats.steps
    chunks: AsyncIterator[Chunk] = model.stream(request(prompt, 200, True))
    async with aclosing(chunks):  # type: ignore[type-var]
        async for _ in chunks:
            if stats.steps > steps + 2:  # drafts are being verified: leave mid-answer
                break
    await idle(engine)
    assert engine.active == 0 and engine.queued == 0
    assert_kv_exact(engine)
    again = await generate(model, request(prompt, 60, True))  # reuses the cancelled one's cells
    assert_close(reference, again)
