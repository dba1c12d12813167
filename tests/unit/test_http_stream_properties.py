"""The stream writers of every surface (SSE for OpenAI, Anthropic and Responses; NDJSON for Ollama) on
arbitrary text, through the real app over a fake backend: whatever the text (newlines, blank lines,
"data:", quotes, any Unicode) and however it is cut into chunks, each event parses on its own, the
stream ends as a success, and the text joined from the events is the text the backend produced."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.fake_backend import Say
from tests.support.inprocess import MODEL, in_process
from tests.support.surfaces import SURFACES, Surface

TRICKY = st.sampled_from(["\n", "\n\n", "\r\n", "data: x", "event: error", '"', "\\", "\u2028", "\x00", "}{"])
PIECE = st.lists(TRICKY | st.text(max_size=6), min_size=1, max_size=4).map("".join).filter(bool)


async def answer(surface: Surface, texts: list[str]) -> tuple[int, str, bool]:
    with tempfile.TemporaryDirectory() as home:
        async with in_process(Path(home)) as lb:
            lb.local.then(Say(tuple(texts)))
            response = await lb.client.post(
                surface.path, json=surface.body(MODEL, stream=True), headers=surface.headers
            )
    events = surface.parse(response.content)
    return response.status_code, surface.text_of(events), surface.is_done(events)


@pytest.mark.parametrize("surface", SURFACES, ids=[s.name for s in SURFACES])
@settings(max_examples=25, deadline=None)
@given(texts=st.lists(PIECE, min_size=1, max_size=6))
def test_any_text_survives_the_streams_framing(surface: Surface, texts: list[str]) -> None:
    status, text, done = asyncio.run(answer(surface, texts))
    assert status == 200 and done
    assert text == "".join(texts)


@pytest.mark.parametrize("surface", SURFACES, ids=[s.name for s in SURFACES])
def test_unicode_line_separators_do_not_split_an_event(surface: Surface) -> None:
    """Python clients split lines as str.splitlines does (httpx's iter_lines, which the ollama client
    reads NDJSON with): U+2028, U+2029 and NEL must not appear raw in a line."""
    texts = ["a\u2028b", "\x85", "c\u2029d"]
    assert asyncio.run(answer(surface, texts)) == (200, "".join(texts), True)
