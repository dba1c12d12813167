"""Reasoning split, call ids and finish reasons: what the client sees from raw model text."""

from __future__ import annotations

import itertools
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from lumbung import toolcalls
from lumbung.engines.base import Collector
from lumbung.toolcalls.output import OutputShaper
from lumbung.toolcalls.reasoning import ThinkSplitter
from lumbung.types import Chunk, Tool, Usage

TOOLS = [Tool("get_time", None, {"type": "object", "properties": {"tz": {"type": "string"}}})]
CALL = '<tool_call>\n{"name": "get_time", "arguments": {"tz": "WIB"}}\n</tool_call>'


def feed(shaper: OutputShaper, pieces: list[str], reason: str = "stop") -> list[Chunk]:
    out = [shaper.shape(Chunk(text=p)) for p in pieces]
    out.append(shaper.shape(Chunk(finish_reason=reason, usage=Usage(3, len(pieces)))))  # type: ignore[arg-type]
    return out


def collect(chunks: list[Chunk]) -> Collector:
    c = Collector()
    for chunk in chunks:
        c.add(chunk)
    return c


def pieces_of(text: str, cuts: list[int]) -> list[str]:
    points = sorted({0, *cuts, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_reasoning_never_leaks_into_content_or_arguments(data: st.DataObject) -> None:
    text = "<think>\nShould I call get_time? <tool_call> is how.\n</think>\n\nChecking." + "\n" + CALL
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=12))
    shaper = OutputShaper(fmt=toolcalls.get("hermes"), tools=TOOLS, think=ThinkSplitter())
    result = collect(feed(shaper, pieces_of(text, cuts))).result()
    assert result.reasoning == "\nShould I call get_time? <tool_call> is how.\n"
    assert result.text == "Checking."
    assert [(c.name, json.loads(c.arguments)) for c in result.tool_calls] == [("get_time", {"tz": "WIB"})]
    assert result.finish_reason == "tool_calls"


def test_prompt_that_opens_the_think_block_starts_inside_it() -> None:
    shaper = OutputShaper(fmt=None, tools=[], think=ThinkSplitter(inside=True))
    result = collect(feed(shaper, ["Let me think", ".</think>", "Answer: 4"])).result()
    assert (result.reasoning, result.text) == ("Let me think.", "Answer: 4")


def test_think_tag_after_answer_text_is_plain_text() -> None:
    shaper = OutputShaper(fmt=None, tools=[], think=ThinkSplitter())
    result = collect(feed(shaper, ["Use <think>", " tags"])).result()
    assert (result.reasoning, result.text) == ("", "Use <think> tags")


def test_unclosed_reasoning_cut_by_length_stays_reasoning() -> None:
    shaper = OutputShaper(fmt=None, tools=[], think=ThinkSplitter())
    result = collect(feed(shaper, ["<think>", "still thinking <"], reason="length")).result()
    assert (result.reasoning, result.text, result.finish_reason) == ("still thinking <", "", "length")


def test_calls_get_unique_ids_and_consecutive_indexes() -> None:
    shaper = OutputShaper(fmt=toolcalls.get("hermes"), tools=TOOLS, think=None)
    chunks = feed(shaper, [CALL, "\n", CALL])
    calls = [c for chunk in chunks for c in chunk.tool_calls]
    assert [c.index for c in calls] == [0, 1]
    assert len({c.id for c in calls}) == 2 and all(c.id.startswith("call_") for c in calls)
    assert chunks[-1].finish_reason == "tool_calls"


def test_plain_answer_keeps_its_finish_reason_and_text() -> None:
    shaper = OutputShaper(fmt=toolcalls.get("hermes"), tools=TOOLS, think=None)
    result = collect(feed(shaper, ["It is ", "noon.\n"], reason="length")).result()
    assert (result.text, result.finish_reason, result.tool_calls) == ("It is noon.\n", "length", [])


def test_collector_joins_argument_fragments_by_index() -> None:
    from lumbung.types import ToolCall

    c = Collector()
    c.add(Chunk(tool_calls=[ToolCall("call_a", "f", '{"x":', 0), ToolCall("call_b", "g", "{}", 1)]))
    c.add(Chunk(tool_calls=[ToolCall("", "", "1}", 0)], finish_reason="tool_calls", usage=Usage()))
    result = c.result()
    assert [(t.id, t.name, t.arguments) for t in result.tool_calls] == [
        ("call_a", "f", '{"x":1}'),
        ("call_b", "g", "{}"),
    ]


WEATHER = Tool("get_weather", None, {"type": "object", "properties": {"city": {"type": "string"}}})


def _cut_before_the_name(fmt: toolcalls.ToolFormat, name: str) -> list[str]:
    """The family's call of ``name`` cut two characters into the name: what max_tokens leaves."""
    whole = fmt.render_call(name, {"city": "Jakarta"})
    return pieces_of(whole[: whole.index(name) + 2], [1, 3, 6])


def test_a_forced_call_cut_before_its_name_is_never_text() -> None:
    """Every family: a named call cut by max_tokens inside its opening comes out as that call,
    incomplete (finish reason length), not as the family's raw syntax in the text."""
    for name, fmt in toolcalls.FORMATS.items():
        for forced in ("get_time", "required"):
            tools = TOOLS if forced == "required" else [*TOOLS, WEATHER]
            shaper = OutputShaper(fmt=fmt, tools=tools, think=None, forced=forced)
            result = collect(feed(shaper, _cut_before_the_name(fmt, "get_time"), reason="length")).result()
            assert result.text == "", (name, result.text)
            assert [(c.name, c.arguments) for c in result.tool_calls] == [("get_time", "")], name
            assert result.finish_reason == "length"


def test_a_required_call_among_several_tools_cut_before_its_name_is_an_error() -> None:
    import pytest

    from lumbung.errors import InvalidRequest

    for name, fmt in toolcalls.FORMATS.items():
        shaper = OutputShaper(fmt=fmt, tools=[*TOOLS, WEATHER], think=None, forced="required")
        with pytest.raises(InvalidRequest) as err:
            feed(shaper, _cut_before_the_name(fmt, "get_weather"), reason="length")
        assert err.value.param == "max_tokens", name


def test_a_free_answer_cut_inside_a_call_opening_stays_text() -> None:
    """tool_choice auto: a block that never named its tool is text, as documented."""
    fmt = toolcalls.get("hermes")
    shaper = OutputShaper(fmt=fmt, tools=TOOLS, think=None)
    result = collect(feed(shaper, _cut_before_the_name(fmt, "get_time"), reason="length")).result()
    assert result.text.startswith("<tool_call>") and result.tool_calls == []
