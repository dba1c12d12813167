"""The stop string that ended an answer is remembered, so surfaces can report it (Anthropic does)."""

from __future__ import annotations

from lumbung.engines.base import collect
from lumbung.engines.llamacpp.detok import StopMatcher
from lumbung.types import Chunk, Usage


def test_matcher_remembers_the_earliest_stop_found() -> None:
    m = StopMatcher(["END", "ST"])
    assert m.feed("abc S") == ("abc ", False) and m.matched is None
    assert m.feed("T and END") == ("abc "[4:], True)
    assert m.matched == "ST"


async def test_collect_keeps_the_stop_sequence() -> None:
    async def stream():  # type: ignore[no-untyped-def]
        yield Chunk(text="a")
        yield Chunk(finish_reason="stop", usage=Usage(1, 1), stop_sequence="END")

    done = await collect(stream())
    assert done.stop_sequence == "END" and done.text == "a"
