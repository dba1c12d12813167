"""Properties of every family's tool-call parser on arbitrary model output (not only documented shapes):
text is built from the family's own calls, markers, JSON pieces and noise, so it often looks almost like a call.
However it is cut into stream pieces, the parser gives what it gives for the whole text, and it never
raises anything but ModelOutputError. That one is the single way the cut may matter: a block that turns
out malformed is plain text if none of it was streamed yet, but an error once its call had opened (and
finer pieces open a call sooner)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from lumbung import toolcalls
from lumbung.errors import ModelOutputError
from lumbung.toolcalls.base import Parsed, ToolFormat
from lumbung.toolcalls.parsed import joined
from lumbung.types import Tool

TOOLS = [
    Tool("get_weather", None, {"type": "object", "properties": {"city": {"type": "string"}}}),
    Tool("get_time", None, {"type": "object", "properties": {}}),
]
JSON_PIECES = [
    '{"name": "get_weather", "arguments": {"city": "Jakarta"}}',
    '{"name": "get_time", "arguments": {}}',
    '{"name": "nope", "arguments": {}}',
    '{"city": "Bandung"}',
    "get_weather",
    "get_time",
    '"',
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\\",
    "\n",
    " ",
    "```",
    "json",
    "<",
    ">",
    "</",
    "<|",
    "|>",
]
FAMILIES = sorted(toolcalls.FORMATS)


def pieces_of(fmt: ToolFormat) -> st.SearchStrategy[str]:
    markers = [*fmt.starts, *([fmt.end] if fmt.end else []), *fmt.ignore]
    calls = [fmt.render_call("get_weather", {"city": "Jakarta"}), fmt.render_call("get_time", {})]
    atoms = st.sampled_from(calls + markers + JSON_PIECES) | st.text(max_size=4)
    return st.lists(atoms, max_size=12).map("".join)


Outcome = tuple[str, list[tuple[str, str]]] | str


def outcome(fmt: ToolFormat, pieces: list[str]) -> Outcome:
    parser = fmt.parser(TOOLS)
    out = Parsed()
    try:
        for piece in [*pieces, None]:
            step = parser.feed(piece) if piece is not None else parser.finish()
            out.text += step.text
            out.calls += step.calls
    except ModelOutputError:
        return "ModelOutputError"
    assert not out.calls or out.calls[0].new, "an argument fragment before any call opened"
    return out.text, [(c.name, c.arguments) for c in joined(out.calls)]


@st.composite
def family_and_text(draw: st.DrawFn) -> tuple[ToolFormat, str, list[str]]:
    fmt = toolcalls.get(draw(st.sampled_from(FAMILIES)))
    text = draw(pieces_of(fmt))
    cuts = draw(st.lists(st.integers(0, len(text)), max_size=len(text)))
    points = sorted({0, *cuts, len(text)})
    return fmt, text, [text[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=400, deadline=None)
@given(case=family_and_text())
def test_any_chunking_of_any_output_parses_as_the_whole_does(case: tuple[ToolFormat, str, list[str]]) -> None:
    fmt, text, pieces = case
    whole = outcome(fmt, [text])
    for streamed in (outcome(fmt, pieces), outcome(fmt, list(text))):  # any cut; a character at a time
        assert streamed == whole or streamed == "ModelOutputError"


@settings(max_examples=200, deadline=None)
@given(family=st.sampled_from(FAMILIES), text=st.text(max_size=60))
def test_plain_unicode_never_breaks_a_parser(family: str, text: str) -> None:
    fmt = toolcalls.get(family)
    assert outcome(fmt, list(text)) == outcome(fmt, [text]) == (text, [])
