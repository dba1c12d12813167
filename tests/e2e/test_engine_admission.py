"""Admission with the real embedded model, in process: every kind of request shares one model's
``parallel + max_queue`` places, a request that can never fit is the client's error, and an
embedding request whose caller left stops between batches."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path

import pytest

from lumbung.engines.llamacpp.backend import LocalModel, LocalModelSpec
from lumbung.engines.llamacpp.embedder import MAX_SEQUENCES
from lumbung.engines.llamacpp.engine import EngineConfig
from lumbung.errors import ContextLengthExceeded, InvalidRequest, RateLimited
from lumbung.store.embedded import GEMMA, embedded_model_path
from lumbung.types import ChatRequest, Chunk, Message, SamplingParams


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return embedded_model_path(tmp_path_factory.mktemp("admission-home"), GEMMA)


@pytest.fixture
def small(model_path: Path) -> Iterator[LocalModel]:
    """parallel 1 + max_queue 1: two requests at once."""
    config = EngineConfig(context_size=512, threads=2, parallel=1, max_queue=1, cache_mb=0)
    model = LocalModel(LocalModelSpec(id="m", path=model_path, engine=config), 600.0)
    yield model
    model.close()


def chat(text: str, *, fanout: int = 1, request_id: str | None = None, max_tokens: int = 400) -> ChatRequest:
    request = ChatRequest(
        model="m",
        messages=[Message(role="user", content=text)],
        sampling=SamplingParams(temperature=0, max_tokens=max_tokens),
        fanout=fanout,
    )
    if request_id is not None:
        request.id = request_id
    return request


async def holding(model: LocalModel) -> AsyncGenerator[Chunk, None]:
    """A long answer that has its slot: its first chunk is out."""
    stream = model.stream(chat("Write a very long story about a rice barn."))
    await anext(stream)
    return stream


async def until(check: object) -> None:
    while not check():  # type: ignore[operator]
        await asyncio.sleep(0.01)


async def test_choices_that_can_never_all_be_admitted_are_a_400_naming_the_limit(small: LocalModel) -> None:
    with pytest.raises(InvalidRequest) as err:
        await anext(small.stream(chat("hi", fanout=3)))
    assert err.value.status == 400 and err.value.param == "n"
    assert "parallel (1) + max_queue (1) = 2" in err.value.message
    assert small.engine.queued == 0 and small.engine.active == 0  # nothing was submitted


async def test_the_429_message_does_not_count_the_requests_own_choices(small: LocalModel) -> None:
    other = await holding(small)  # one other request holds the only slot
    first = small.stream(chat("Name a fruit.", fanout=2, request_id="req-two"))
    waiting = asyncio.ensure_future(anext(first))  # its first choice waits in the queue
    try:
        await until(lambda: small.engine.queued == 1)
        with pytest.raises(RateLimited) as err:
            await anext(small.stream(chat("Name a fruit.", fanout=2, request_id="req-two")))
        assert "1 other requests are running or waiting" in err.value.message
        assert "parallel 1 + max_queue 1" in err.value.message
        assert small.engine.stats().refused == 1
        assert err.value.retry_after is not None and err.value.retry_after >= 1
    finally:
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await first.aclose()
        await other.aclose()


async def test_embeddings_take_the_same_places_as_generation(small: LocalModel) -> None:
    one = await holding(small)
    two = small.stream(chat("Name a fruit."))
    waiting = asyncio.ensure_future(anext(two))
    try:
        await until(lambda: small.engine.queued == 1)
        with pytest.raises(RateLimited) as err:
            await small.embed(["hello"])
        assert err.value.status == 429 and err.value.retry_after is not None
    finally:
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await two.aclose()
        await one.aclose()
    await until(lambda: not small.busy)
    done = await small.embed(["hello"])  # places free again: admitted
    assert len(done.vectors) == 1 and small.engine.outside == 0


async def test_embedding_requests_beyond_the_places_are_refused(small: LocalModel) -> None:
    texts = [f"Line {i} of a long ledger." for i in range(8 * MAX_SEQUENCES)]
    outcomes = await asyncio.gather(*(small.embed(texts) for _ in range(5)), return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, RateLimited)]
    served = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(served) == 2 and len(refused) == 3  # parallel 1 + max_queue 1
    assert small.engine.outside == 0
    assert small.engine.stats().refused == 3  # what /metrics reports as lumbung_model_refused_requests_total


async def test_a_cancelled_embedding_request_stops_between_batches(small: LocalModel) -> None:
    texts = [f"Entry {i}: the barn keeper counted {i} sacks of rice." for i in range(512)]
    embedder = await asyncio.to_thread(small.embedder)
    total = math.ceil(len(texts) / MAX_SEQUENCES)
    before = embedder.batches
    task = asyncio.ensure_future(small.embed(texts))
    await until(lambda: embedder.batches > before)
    task.cancel()  # what a client hang-up does to a non-streaming request
    with pytest.raises(asyncio.CancelledError):
        await task
    assert embedder.batches - before < total // 2  # it stopped, long before the end
    assert small.engine.outside == 0 and not small.busy  # its place is free once it returns


async def test_token_ids_embed_like_their_text_and_are_checked(small: LocalModel) -> None:
    text = "The barn keeper counted the sacks."
    ids = small.model.tokenize(text, add_special=True, parse_special=False)
    by_text, by_ids = await small.embed([text, "other"]), await small.embed([ids, [1, 2, 3]])
    assert by_ids.prompt_tokens == len(ids) + 3
    assert all(
        math.isclose(a, b, abs_tol=1e-5) for a, b in zip(by_text.vectors[0], by_ids.vectors[0], strict=True)
    )
    vocab = small.model.n_vocab
    with pytest.raises(InvalidRequest) as err:
        await small.embed([ids, [5, 6, vocab]])
    assert "input[1][2]" in err.value.message and str(vocab) in err.value.message
    with pytest.raises(InvalidRequest) as err:
        await small.embed([[-1]])
    assert "input[0][0]" in err.value.message
    with pytest.raises(InvalidRequest) as err:
        await small.embed([ids, []])
    assert "input[1]" in err.value.message
    with pytest.raises(ContextLengthExceeded):
        await small.embed([[5] * 10_000])
    assert small.engine.outside == 0
