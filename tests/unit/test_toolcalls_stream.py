# ruff: noqa: RUF001  (DeepSeek's markers use fullwidth bars)
"""Tool-call arguments stream as the model writes them, in every family.

A call opens once its name is known; then its arguments arrive in fragments (a token's worth where
they are JSON text, a parameter at a time in Qwen3-Coder's XML) that join into exactly the final
arguments, valid JSON, however the model's text is split. A call that breaks after part
of it went out is an error (or, cut by ``max_tokens``, an incomplete call with finish reason
``length``), never a complete call.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumbung import toolcalls
from lumbung.engines.base import Collector
from lumbung.errors import ModelOutputError
from lumbung.toolcalls.base import ToolFormat
from lumbung.toolcalls.output import OutputShaper
from lumbung.toolcalls.parsed import ParsedCall, joined
from lumbung.toolcalls.stream import JsonScanner
from lumbung.types import Chunk, Tool, Usage

TOOLS = [
    Tool("write_file", None, {"type": "object", "properties": {"path": {}, "content": {}}}),
    Tool("get_time", None, {"type": "object", "properties": {"tz": {"type": "string"}}}),
]
JSON_FAMILIES = sorted(name for name, fmt in toolcalls.FORMATS.items() if fmt.stream_heads)
LONG: dict[str, Any] = {
    "path": "notes/hari ini.md",
    "content": 'Line one "quoted" \\ back\nline two: {not json} [x] \u00e9\u6f22 ' * 6,
    "tags": ["a", {"deep": [1, 2.5, -3e2, True, False, None]}],
}
# The same two calls as each family writes them, in its own spacing.
TWO: dict[str, str] = {
    "hermes": '<tool_call>\n{"name": "write_file", "arguments": {"path": "a.txt", "content": "hi there"}}\n'
    '</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": { "tz" : "WIB" }}\n</tool_call>',
    "gemma": '```tool_call\n{"name": "write_file", "arguments": {"path": "a.txt", "content": "hi there"}}\n```\n'
    '```tool_call\n{"name": "get_time", "arguments": { "tz" : "WIB" }}\n```',
    "llama3": '{"name": "write_file", "parameters": {"path": "a.txt", "content": "hi there"}};\n'
    '{"name": "get_time", "parameters": { "tz" : "WIB" }}',
    "mistral": '[TOOL_CALLS][{"name": "write_file", "arguments": {"path": "a.txt", "content": "hi there"}}, '
    '{"name": "get_time", "arguments": { "tz" : "WIB" }}]',
    "qwen3_coder": "<tool_call>\n<function=write_file>\n<parameter=path>\na.txt\n</parameter>\n"
    "<parameter=content>\nhi there\n</parameter>\n</function>\n</tool_call>\n<tool_call>\n"
    "<function=get_time>\n<parameter=tz>\nWIB\n</parameter>\n</function>\n</tool_call>",
    "deepseek": "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>write_file\n```json\n"
    '{"path": "a.txt", "content": "hi there"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>get_time'
    '<｜tool▁sep｜>{ "tz" : "WIB" }<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
    "harmony": 'to=functions.write_file<|message|>{"path": "a.txt", "content": "hi there"}<|call|>'
    'to=functions.get_time<|message|>{ "tz" : "WIB" }<|call|>',
    "kimi_k2": "<|tool_calls_section_begin|><|tool_call_begin|>functions.write_file:0<|tool_call_argument_begin|>"
    '{"path": "a.txt", "content": "hi there"}<|tool_call_end|><|tool_call_begin|>functions.get_time:1'
    '<|tool_call_argument_begin|>{ "tz" : "WIB" }<|tool_call_end|><|tool_calls_section_end|>',
    "glm": "<tool_call>write_file\n<arg_key>path</arg_key>\n<arg_value>a.txt</arg_value>\n<arg_key>content</arg_key>\n"
    "<arg_value>hi there</arg_value>\n</tool_call>\n<tool_call>get_time\n<arg_key>tz</arg_key>\n<arg_value>WIB"
    "</arg_value>\n</tool_call>",
    **{
        name: f'<｜DSML｜{wrapper}>\n<｜DSML｜invoke name="write_file">\n'
        '<｜DSML｜parameter name="path" string="true">a.txt</｜DSML｜parameter>\n'
        '<｜DSML｜parameter name="content" string="true">hi there</｜DSML｜parameter>\n</｜DSML｜invoke>\n'
        '<｜DSML｜invoke name="get_time">\n<｜DSML｜parameter name="tz" string="true">WIB</｜DSML｜parameter>\n'
        f"</｜DSML｜invoke>\n</｜DSML｜{wrapper}>"
        for name, wrapper in (("deepseek_v3_2", "function_calls"), ("deepseek_v4", "tool_calls"))
    },
}
TWO["minimax_m2"] = (
    '<minimax:tool_call>\n<invoke name="write_file">\n<parameter name="path">a.txt</parameter>\n'
    '<parameter name="content">hi there</parameter>\n</invoke>\n<invoke name="get_time">\n'
    '<parameter name="tz">WIB</parameter>\n</invoke>\n</minimax:tool_call>'
)
TWO["seed_oss"] = (
    "<seed:tool_call>\n<function=write_file>\n<parameter=path>a.txt</parameter>\n<parameter=content>hi there"
    "</parameter>\n</function>\n</seed:tool_call>\n<seed:tool_call>\n<function=get_time>\n<parameter=tz>WIB"
    "</parameter>\n</function>\n</seed:tool_call>"
)
TWO["tool_calls_json"] = (
    '<tool_calls>\n[{"name": "write_file", "arguments": {"path": "a.txt", "content": "hi there"}}, '
    '{"name": "get_time", "arguments": { "tz" : "WIB" }}]\n</tool_calls>'
)
TWO["command_r"] = (
    '<|START_ACTION|>[\n    {"tool_call_id": "0", "tool_name": "write_file", "parameters": {"path": "a.txt", '
    '"content": "hi there"}},\n    {"tool_call_id": "1", "tool_name": "get_time", "parameters": { "tz" : "WIB" }}\n'
    "]<|END_ACTION|>"
)
TWO["kimi_k3"] = (
    '<|open|>tools<|sep|><|open|>call tool="write_file" index="1"<|sep|><|open|>argument key="path" type="string"<|sep|>'
    'a.txt<|close|>argument<|sep|><|open|>argument key="content" type="string"<|sep|>hi there<|close|>argument<|sep|>'
    '<|close|>call<|sep|><|open|>call tool="get_time" index="2"<|sep|><|open|>argument key="tz" type="string"<|sep|>'
    "WIB<|close|>argument<|sep|><|close|>call<|sep|><|close|>tools<|sep|>"
)
TWO["nemotron"] = (
    '<TOOLCALL>[{"name": "write_file", "arguments": {"path": "a.txt", "content": "hi there"}}, '
    '{"name": "get_time", "arguments": { "tz" : "WIB" }}]</TOOLCALL>'
)
TWO["gigachat"] = (
    '<|function_call|>{"name": "write_file", "arguments": {"path": "a.txt", "content": "hi there"}}'
    '<|function_call|>{"name": "get_time", "arguments": { "tz" : "WIB" }}'
)
TWO["apertus"] = (
    '<|tools_prefix|>[{"write_file": {"path": "a.txt", "content": "hi there"}}, {"get_time": { "tz" : "WIB" }}]'
    "<|tools_suffix|>"
)
TWO["firefunction"] = (
    ' functools[{"name": "write_file", "arguments": {"path": "a.txt", "content": "hi there"}}, '
    '{"name": "get_time", "arguments": { "tz" : "WIB" }}]'
)
TWO["command_r_plus"] = (
    'Action:\n```json\n[{"tool_name": "write_file", "parameters": {"path": "a.txt", "content": "hi there"}}, '
    '{"tool_name": "get_time", "parameters": { "tz" : "WIB" }}]```'
)
TWO["hy3"] = (
    "<tool_calls:opensource>\n<tool_call:opensource>write_file<tool_sep:opensource>\n"
    "<arg_key:opensource>path</arg_key:opensource>\n<arg_value:opensource>a.txt</arg_value:opensource>\n"
    "<arg_key:opensource>content</arg_key:opensource>\n<arg_value:opensource>hi there</arg_value:opensource>\n"
    "</tool_call:opensource>\n<tool_call:opensource>get_time<tool_sep:opensource>\n"
    "<arg_key:opensource>tz</arg_key:opensource>\n<arg_value:opensource>WIB</arg_value:opensource>\n"
    "</tool_call:opensource>\n</tool_calls:opensource>"
)
TWO["solar_open"] = (
    "<|tool_calls|><|tool_call:begin|>c1<|tool_call:name|>write_file<|tool_call:args|>"
    '{"path": "a.txt", "content": "hi there"}<|tool_call:end|><|tool_call:begin|>c2<|tool_call:name|>get_time'
    '<|tool_call:args|>{ "tz" : "WIB" }<|tool_call:end|><|calls|>'
)
TWO["gigachat3"] = (
    '<|message_sep|>\n\nfunction call<|role_sep|>\n{"name": "write_file", "arguments": {"path": "a.txt", '
    '"content": "hi there"}}<|message_sep|>\n\nfunction call<|role_sep|>\n'
    '{"name": "get_time", "arguments": { "tz" : "WIB" }}'
)
TWO["functionary_v3_1"] = (
    '<function=write_file>{"path": "a.txt", "content": "hi there"}</function>'
    '<function=get_time>{ "tz" : "WIB" }</function>'
)
TWO["atem"] = (
    '<atem:function_calls>\n<atem:invoke name="write_file">\n<atem:parameter name="path">a.txt</atem:parameter>\n'
    '<atem:parameter name="content">hi there</atem:parameter>\n</atem:invoke>\n<atem:invoke name="get_time">\n'
    '<atem:parameter name="tz">WIB</atem:parameter>\n</atem:invoke>\n</atem:function_calls>'
)
TWO["functionary_v3_2"] = (
    '>>>write_file\n{"path": "a.txt", "content": "hi there"}>>>get_time\n{ "tz" : "WIB" }'
)
TWO["minicpm"] = (
    '<function name="write_file"><param name="path">a.txt</param><param name="content">hi there</param>'
    '</function>\n<function name="get_time"><param name="tz">WIB</param></function>'
)
# Calls sent whole when their block closes (Gemma 4's notation is not JSON text).
WHOLE = {"gemma4", "lfm", "minimax_m3"}  # and LFM2.5's Python calls, MiniMax M3's nested XML
# Raw parameter values, typed once whole: these stream a parameter at a time.
PER_PARAMETER = {
    "qwen3_coder",
    "glm",
    "deepseek_v3_2",
    "deepseek_v4",
    "minimax_m2",
    "seed_oss",
    "kimi_k3",
    "hy3",
    "atem",
    "minicpm",
}
EXPECTED = [("write_file", '{"path":"a.txt","content":"hi there"}'), ("get_time", '{"tz":"WIB"}')]


def steps(fmt: ToolFormat, pieces: list[str], truncated: bool = False) -> list[list[ParsedCall]]:
    parser = fmt.parser(TOOLS)
    return [*(parser.feed(p).calls for p in pieces), parser.finish(truncated).calls]


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({0, *cuts, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


def check_shape(events: list[ParsedCall]) -> None:
    """Every fragment continues an opened call; the joined arguments are valid JSON objects."""
    assert not events or events[0].new
    for call in joined(events):
        assert isinstance(json.loads(call.arguments), dict)


def test_every_family_streams() -> None:
    assert sorted([*TWO, *WHOLE]) == sorted(toolcalls.FORMATS)
    assert all(toolcalls.get(name).streamer({}) is not None for name in TWO)
    assert all(toolcalls.get(name).streamer({}) is None for name in WHOLE)


@pytest.mark.parametrize("family", sorted(TWO))
def test_byte_by_byte_arguments_arrive_in_many_fragments_before_the_block_closes(family: str) -> None:
    fmt = toolcalls.get(family)
    text = TWO[family]
    per_step = steps(fmt, list(text))
    events = [e for step in per_step for e in step]
    check_shape(events)
    assert [(c.name, c.arguments) for c in joined(events)] == EXPECTED
    fragments = [e for step in per_step[:-1] for e in step if not e.new]
    assert len(fragments) > (3 if family in PER_PARAMETER else 20)  # not one piece per call
    first_fragment = next(i for i, step in enumerate(per_step) if any(not e.new for e in step))
    assert first_fragment < text.index("hi there")  # sent while the model is still writing


@settings(max_examples=80, deadline=None)
@given(family=st.sampled_from(sorted(TWO)), data=st.data())
def test_fragments_join_into_the_same_arguments_for_any_split(family: str, data: st.DataObject) -> None:
    text = TWO[family]
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=len(text)))
    events = [e for step in steps(toolcalls.get(family), split(text, cuts)) for e in step]
    check_shape(events)
    assert [(c.name, c.arguments) for c in joined(events)] == EXPECTED


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**9), 10**9) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None)
@given(
    family=st.sampled_from(JSON_FAMILIES),
    args=st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=4),
    data=st.data(),
)
def test_any_arguments_round_trip_exactly(family: str, args: dict[str, Any], data: st.DataObject) -> None:
    fmt = toolcalls.get(family)
    text = fmt.render_call("write_file", args)
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=len(text)))
    events = [e for step in steps(fmt, split(text, cuts)) for e in step]
    [call] = joined(events)
    assert call.name == "write_file" and json.loads(call.arguments) == args
    [whole] = joined([e for step in steps(fmt, [text]) for e in step])
    assert call.arguments == whole.arguments  # the same text whether it streamed or not


def test_long_arguments_keep_escapes_and_unicode_exactly() -> None:
    fmt = toolcalls.get("hermes")
    text = fmt.render_call("write_file", LONG)
    events = [e for step in steps(fmt, list(text)) for e in step]
    [call] = joined(events)
    assert json.loads(call.arguments) == LONG
    assert call.arguments == json.dumps(LONG, ensure_ascii=False, separators=(",", ":"))


def test_scanner_drops_only_whitespace_between_tokens() -> None:
    scanner = JsonScanner()
    sent, used = scanner.feed('{ "a b" : [ 1 , "\\" }" ] }  trailing')
    assert (sent, scanner.done) == ('{"a b":[1,"\\" }"]}', True)
    assert used == len('{ "a b" : [ 1 , "\\" }" ] }')


@pytest.mark.parametrize(
    ("family", "text"),
    [
        ("hermes", '<tool_call>\n{"name": "get_time", "arguments": {"tz": "WIB"}} oops\n</tool_call>'),
        ("hermes", '<tool_call>\n{"name": "get_time", "arguments": {"tz": "WIB\n"}}\n</tool_call>'),
        ("gemma", '```tool_call\n{"name": "get_time", "arguments": {"tz": "WIB"]}\n```'),
        ("llama3", '{"name": "get_time", "parameters": {"tz": "WIB"}}; {"name": "nope", "parameters": {}}'),
        ("mistral", '[TOOL_CALLS][{"name": "get_time", "arguments": {"tz": "WIB"}}, 7]'),
        ("deepseek", '<｜tool▁call▁begin｜>get_time<｜tool▁sep｜>{"tz": "WIB"}}<｜tool▁call▁end｜>'),
        ("qwen3_coder", "<tool_call>\n<function=get_time>\n<parameter=tz>\nWIB\n</parameter>\n</tool_call>"),
    ],
)
def test_a_call_broken_after_it_streamed_is_an_error_never_a_call(family: str, text: str) -> None:
    fmt = toolcalls.get(family)
    with pytest.raises(ModelOutputError):
        steps(fmt, list(text))
    whole = [e for step in steps(fmt, [text]) for e in step] if fmt.end and fmt.end in text else []
    assert all(not e.new for e in whole)  # in one piece the block is judged first: text, no call


@pytest.mark.parametrize(
    ("family", "text"),
    [
        ("hermes", '<tool_call>\n{"name": "not_offered", "arguments": {"tz": "WIB"}}\n</tool_call>'),
        ("hermes", '<tool_call>\n{"arguments": {"tz": "WIB"}, "name": "get_time"}\n</tool_call>'),
        ("hermes", '<tool_call>\n{"name": "get_time", "arguments": "{\\"tz\\": \\"WIB\\"}"}\n</tool_call>'),
        (
            "qwen3_coder",
            "<tool_call>\n<function=nope>\n<parameter=tz>\nWIB\n</parameter>\n</function>\n</tool_call>",
        ),
    ],
)
def test_shapes_the_heads_do_not_know_are_judged_whole(family: str, text: str) -> None:
    fmt = toolcalls.get(family)
    streamed = [e for step in steps(fmt, list(text)) for e in step]
    whole = [e for step in steps(fmt, [text]) for e in step]
    assert streamed == whole and all(e.new for e in whole)  # whole calls (or none), never fragments


def shaped(pieces: list[str], reason: str) -> Collector:
    shaper = OutputShaper(fmt=toolcalls.get("hermes"), tools=TOOLS, think=None)
    collector = Collector()
    for piece in pieces:
        collector.add(shaper.shape(Chunk(text=piece)))
    collector.add(shaper.shape(Chunk(finish_reason=reason, usage=Usage(1, len(pieces)))))  # type: ignore[arg-type]
    return collector


def test_call_cut_by_max_tokens_ends_with_length_and_incomplete_arguments() -> None:
    text = '<tool_call>\n{"name": "write_file", "arguments": {"path": "a.txt", "content": "hal'
    result = shaped(list(text), "length").result()
    assert result.finish_reason == "length"
    [call] = result.tool_calls
    assert call.name == "write_file" and call.arguments == '{"path":"a.txt","content":"hal'


def test_call_cut_by_a_stop_is_an_error() -> None:
    text = '<tool_call>\n{"name": "write_file", "arguments": {"path": "a.txt", "content": "hal'
    with pytest.raises(ModelOutputError):
        shaped(list(text), "stop")


def test_fragments_reach_the_client_with_their_call_index_and_no_id() -> None:
    text = TWO["hermes"]
    shaper = OutputShaper(fmt=toolcalls.get("hermes"), tools=TOOLS, think=None)
    chunks = [shaper.shape(Chunk(text=ch)) for ch in text]
    chunks.append(shaper.shape(Chunk(finish_reason="stop", usage=Usage(1, 1))))
    calls = [c for chunk in chunks for c in chunk.tool_calls]
    opens = [c for c in calls if c.id]
    assert [(c.index, c.name) for c in opens] == [(0, "write_file"), (1, "get_time")]
    for call in calls:
        assert call.id or (call.name == "" and call.index in (0, 1))
    collector = Collector()
    for chunk in chunks:
        collector.add(chunk)
    result = collector.result()
    assert [(c.name, c.arguments) for c in result.tool_calls] == EXPECTED
    assert result.finish_reason == "tool_calls"
