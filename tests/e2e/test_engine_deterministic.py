"""Deterministic mode (``deterministic: true``): greedy text under concurrency is the text alone.

Without it, llama.cpp's CPU kernels round a sequence's logits differently by the shape of its batch
and by where its cells sit in the shared KV cache, and greedy text drifts (docs/performance.md,
"Determinism"). A real `lumbung serve` with the embedded SmolLM2 and Gemma 3, driven by the openai
SDK: every prompt alone, then all of them from eight clients at once (sequences start and end at
different steps, prompts of different lengths are read while others generate), compared byte for
byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support.server import ServerProcess

SUBJECTS = [
    "rice barns",
    "the monsoon",
    "a volcano at dawn",
    "bamboo bridges",
    "night markets",
    "kites over a beach",
    "a river ferry",
    "tea plantations",
    "a gamelan orchestra",
    "batik dyeing",
]
PROMPTS = [f"Write three sentences about {s}." for s in SUBJECTS] + [
    f"Explain to a child, step by step and at length, why {s} matter to a village in Java, "
    f"and what would change without them. Mention at least two people by name."
    for s in SUBJECTS
]


@pytest.fixture(scope="module")
def server(lumbung_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = {"deterministic": True, "parallel": 8}
    proc = ServerProcess(lumbung_home, config=config, log_dir=tmp_path_factory.mktemp("det")).start()
    yield proc
    proc.stop()


async def answer(client: openai.AsyncOpenAI, model: str, prompt: str) -> str:
    reply = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=48, temperature=0
    )
    return reply.choices[0].message.content or ""


# SmolLM2 (full attention) and Gemma 3 (sliding-window layers: window-sized KV per stream).
@pytest.mark.parametrize("model", ["smollm2:135m", "gemma3:270m"])
def test_eight_concurrent_greedy_streams_give_the_text_alone(server: ServerProcess, model: str) -> None:
    async def main() -> tuple[list[str], list[str]]:
        async with openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="x") as client:
            alone = [await answer(client, model, p) for p in PROMPTS]
            gate = asyncio.Semaphore(8)

            async def one(prompt: str) -> str:
                async with gate:
                    return await answer(client, model, prompt)

            together = await asyncio.gather(*(one(p) for p in PROMPTS))
            return alone, list(together)

    alone, together = asyncio.run(main())
    assert all(alone), "every prompt got an answer"
    for prompt, a, b in zip(PROMPTS, alone, together, strict=True):
        assert a.encode() == b.encode(), f"{prompt!r}: alone {a!r} vs concurrent {b!r}"
