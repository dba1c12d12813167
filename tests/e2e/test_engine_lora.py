"""LoRA adapters on the local engine, in process, over the real Gemma 3 270M (`gemma3:270m`).

The adapter is made here (tests/support/lora.py): known non-zero weights on every block's attention
q and v projections, in llama.cpp's LoRA GGUF format. Answers are greedy; llama.cpp's kernels round
the same way for a sequence decoded alone and for one decoded in a step of its own, and adapter sets
never share a step, so a request's answer does not depend on what else runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lumbung.engines.base import collect
from lumbung.engines.llamacpp.backend import AdapterSpec, LlamaCppBackend, LocalModelSpec
from lumbung.engines.llamacpp.engine import EngineConfig
from lumbung.errors import ApiError
from lumbung.store.embedded import GEMMA, embedded_model_path
from lumbung.types import ChatRequest, Message, SamplingParams, Usage
from tests.support.lora import write_lora

pytestmark = pytest.mark.e2e
BASE = "gemma3:270m"
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def gemma(lumbung_home: Path) -> Path:
    return embedded_model_path(lumbung_home, GEMMA)


@pytest.fixture(scope="module")
def adapter(gemma: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_lora(gemma, tmp_path_factory.mktemp("lora") / "test-lora.gguf", magnitude=0.05)


def backend(gemma: Path, adapter: Path, cache_mb: float = 0.0) -> LlamaCppBackend:
    spec = LocalModelSpec(
        id=BASE,
        path=gemma,
        engine=EngineConfig(context_size=512, parallel=4, threads=2, cache_mb=cache_mb),
        adapters=[
            AdapterSpec("test", f"{BASE}+test", adapter),
            AdapterSpec("off", f"{BASE}+off", adapter, scale=0.0),
        ],
    )
    return LlamaCppBackend([spec])


@pytest.fixture
async def local(gemma: Path, adapter: Path) -> AsyncIterator[LlamaCppBackend]:
    b = backend(gemma, adapter)
    yield b
    b.close()


async def answer(b: LlamaCppBackend, model: str, prompt: str = PROMPT, n: int = 12) -> tuple[str, Usage]:
    request = ChatRequest(
        model=model,
        messages=[Message("user", prompt)],
        sampling=SamplingParams(temperature=0, max_tokens=n),
    )
    done = await collect(b.stream(request))
    return done.text, done.usage


async def test_adapter_changes_the_answer_and_scale_zero_is_the_base(local: LlamaCppBackend) -> None:
    base, _ = await answer(local, BASE)
    with_adapter, _ = await answer(local, f"{BASE}+test")
    off, _ = await answer(local, f"{BASE}+off")
    assert base and with_adapter
    assert with_adapter != base
    assert off == base
    again, _ = await answer(local, BASE)  # the base model after an adapter ran: adapters are off again
    assert again == base


async def test_concurrent_requests_each_get_their_own_adapter(local: LlamaCppBackend) -> None:
    alone = {m: (await answer(local, m, n=24))[0] for m in (BASE, f"{BASE}+test")}
    assert alone[BASE] != alone[f"{BASE}+test"]
    models = [BASE, f"{BASE}+test", BASE, f"{BASE}+test"]
    together = await asyncio.gather(*(answer(local, m, n=24) for m in models))
    assert [text for text, _ in together] == [alone[m] for m in models]


async def test_prefix_cache_never_reuses_kv_across_adapters(gemma: Path, adapter: Path) -> None:
    b = backend(gemma, adapter, cache_mb=64)
    try:
        base, _ = await answer(b, BASE)
        with_adapter, usage = await answer(b, f"{BASE}+test")
        assert usage.cached_tokens == 0  # the base model's KV for the same prompt is not the adapter's
        assert with_adapter != base
        _, again = await answer(b, f"{BASE}+test")
        assert again.cached_tokens > 0  # the adapter's own prefix is reused
    finally:
        b.close()


async def test_models_list_adapters_with_their_memory(local: LlamaCppBackend, adapter: Path) -> None:
    ids = [m.id for m in local.models()]
    assert ids == [BASE, f"{BASE}+test", f"{BASE}+off"]
    await answer(local, f"{BASE}+test", n=1)
    infos = {m.id: m for m in local.models()}
    test = infos[f"{BASE}+test"]
    assert test.loaded and test.details["base_model"] == BASE
    assert test.details["memory_bytes"] == adapter.stat().st_size
    assert not infos[f"{BASE}+off"].loaded  # adapters load on first use
    base_facts = {a["name"]: a for a in infos[BASE].details["adapters"]}
    assert base_facts["test"]["loaded"] and not base_facts["off"]["loaded"]
    slot_model = await local.get(BASE)
    assert infos[BASE].details["memory_bytes"] == slot_model.memory_bytes
    assert slot_model.memory_bytes == slot_model.engine.memory_bytes + adapter.stat().st_size


async def test_an_adapter_for_another_model_is_refused_and_the_base_serves_on(
    gemma: Path, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.gguf"
    wrong.write_bytes(b"GGUF" + b"\0" * 64)
    spec = LocalModelSpec(
        id=BASE,
        path=gemma,
        engine=EngineConfig(context_size=256, parallel=2, threads=2, cache_mb=0),
        adapters=[AdapterSpec("broken", f"{BASE}+broken", wrong)],
    )
    b = LlamaCppBackend([spec])
    try:
        with pytest.raises(ApiError) as err:
            await answer(b, f"{BASE}+broken")
        assert err.value.status == 500 and err.value.retry_after is None and "broken" in err.value.message
        text, _ = await answer(b, BASE)
        assert text
    finally:
        b.close()


async def test_embeddings_of_an_adapter_model_are_refused(local: LlamaCppBackend) -> None:
    with pytest.raises(ApiError) as err:
        await local.embed(f"{BASE}+test", ["hello"])
    assert err.value.status == 400 and err.value.param == "model"
