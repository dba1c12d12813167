# ruff: noqa: RUF001  (DeepSeek's markers use fullwidth bars on purpose)
"""What is particular to gpt-oss (harmony), Gemma 4, GLM, Kimi K2, DeepSeek V3.2/V4, MiniMax M2,
Seed-OSS and ``<tool_calls>`` JSON (MiniMax M1, Apriel) calls.

The shared behaviour of every family (one and parallel calls, any stream split, streamed arguments,
malformed calls, forced-call grammars, history, reasoning) is checked by the conformance matrix
(tests/support/conformance.py); these pin down each format's own corners.
"""

from __future__ import annotations

import itertools
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from lumbung import toolcalls
from lumbung.engines.base import Collector
from lumbung.toolcalls.gemma4 import to_json
from lumbung.toolcalls.harmony import HarmonySplitter
from lumbung.toolcalls.output import OutputShaper
from lumbung.types import Chunk, Tool, Usage

TOOLS = [
    Tool(
        "get_weather",
        None,
        {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "tags": {"type": "array"},
            },
        },
    ),
    Tool("get_time", None, {"type": "object", "properties": {}}),
]


def shaped(family: str, pieces: list[str], template: str = "<think>") -> Collector:
    fmt = toolcalls.get(family)
    shaper = OutputShaper(fmt=fmt, tools=TOOLS, think=fmt.splitter(template, ""))
    out = Collector()
    for piece in pieces:
        out.add(shaper.shape(Chunk(text=piece)))
    out.add(shaper.shape(Chunk(finish_reason="stop", usage=Usage())))
    return out


def calls(result: Collector) -> list[tuple[str, object]]:
    return [(c.name, json.loads(c.arguments)) for c in result.result().tool_calls]


HARMONY = (
    "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary"
    "<|message|>Checking.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
    '<|message|>{"city": "Jakarta"}<|call|>'
)


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(0, len(HARMONY)), max_size=10))
def test_harmony_channels_reasoning_preamble_and_call_over_any_split(cuts: list[int]) -> None:
    points = sorted({0, *cuts, len(HARMONY)})
    result = shaped("harmony", [HARMONY[a:b] for a, b in itertools.pairwise(points)]).result()
    assert (result.reasoning, result.text) == ("Need the weather.", "Checking.")
    assert [(c.name, json.loads(c.arguments)) for c in result.tool_calls] == [
        ("get_weather", {"city": "Jakarta"})
    ]
    assert result.finish_reason == "tool_calls"


def test_harmony_final_answer_and_plain_text_without_framing() -> None:
    final = "<|channel|>analysis<|message|>Easy.<|end|><|start|>assistant<|channel|>final<|message|>Four."
    result = shaped("harmony", list(final)).result()
    assert (result.reasoning, result.text, result.tool_calls) == ("Easy.", "Four.", [])
    assert shaped("harmony", ["Just text, ", "no channels."]).result().text == "Just text, no channels."
    assert HarmonySplitter().finish() == ("", "")


def test_gemma4_notation_to_json() -> None:
    text = '{city:<|"|>Jakarta, "DKI"<|"|>,days:3,tags:[<|"|>a<|"|>,true,None],nested:{x:1.5}}'
    assert json.loads(to_json(text)) == {
        "city": 'Jakarta, "DKI"',
        "days": 3,
        "tags": ["a", True, None],
        "nested": {"x": 1.5},
    }
    assert json.loads(to_json('{"city": "Jakarta"}')) == {"city": "Jakarta"}  # JSON passes through


def test_gemma4_calls_and_thought_channel() -> None:
    text = (
        '<|channel>thought\nCall it.<channel|><|tool_call>call:get_weather{city:<|"|>Jakarta<|"|>,days:2}<tool_call|>'
        "<|tool_call>call:get_time{}<tool_call|>"
    )
    result = shaped("gemma4", list(text), template="<|channel>")
    assert calls(result) == [("get_weather", {"city": "Jakarta", "days": 2}), ("get_time", {})]
    assert result.result().reasoning.strip() == "Call it."


def test_glm_values_typed_by_schema_and_a_call_without_arguments() -> None:
    text = (
        "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>123</arg_value>\n<arg_key>days</arg_key>\n"
        '<arg_value>4</arg_value>\n<arg_key>tags</arg_key>\n<arg_value>["x"]</arg_value>\n</tool_call>'
        "<tool_call>get_time</tool_call>"
    )
    for pieces in ([text], list(text)):
        assert calls(shaped("glm", pieces)) == [
            ("get_weather", {"city": "123", "days": 4, "tags": ["x"]}),
            ("get_time", {}),
        ]


def test_dsml_string_attribute_types_values() -> None:
    d = "｜DSML｜"
    text = (
        f'<{d}function_calls>\n<{d}invoke name="get_weather">\n<{d}parameter name="city" string="true">42</{d}parameter>\n'
        f'<{d}parameter name="days" string="false">7</{d}parameter>\n</{d}invoke>\n</{d}function_calls>'
    )
    assert calls(shaped("deepseek_v3_2", list(text))) == [("get_weather", {"city": "42", "days": 7})]
    v4 = text.replace("function_calls", "tool_calls")
    assert calls(shaped("deepseek_v4", [v4])) == [("get_weather", {"city": "42", "days": 7})]


def test_kimi_ids_with_and_without_the_functions_prefix() -> None:
    text = (
        "<|tool_calls_section_begin|><|tool_call_begin|>get_time:3<|tool_call_argument_begin|>{}<|tool_call_end|>"
        '<|tool_call_begin|>functions.get_weather:4<|tool_call_argument_begin|>{"city": "Bogor"}<|tool_call_end|>'
        "<|tool_calls_section_end|>"
    )
    assert calls(shaped("kimi_k2", list(text))) == [("get_time", {}), ("get_weather", {"city": "Bogor"})]


def test_families_are_detected_from_their_templates_markers() -> None:
    signs = {
        "{{ '<|start|>assistant<|channel|>final<|message|>' }}": "harmony",
        "{{ '<|tool_call>call:' + name }}": "gemma4",
        "<|tool_calls_section_begin|>": "kimi_k2",
        "{% set t = '｜DSML｜' %}{{ '<' + t + 'function_calls>' }}": "deepseek_v3_2",
        "{% set t = '｜DSML｜' %}{{ '<' + t + 'tool_calls>' }}": "deepseek_v4",
        "<tool_call>{{ name }}<arg_key>": "glm",
        "<minimax:tool_call>": "minimax_m2",
        "<seed:tool_call>\n<function=": "seed_oss",
        "<tool_calls>{{ calls | tojson }}</tool_calls>": "tool_calls_json",
        "{{ '<|open|>' + tag + '<|sep|>' }}": "kimi_k3",
        "<TOOLCALL>{{ calls | tojson }}</TOOLCALL>": "nemotron",
        "<|function_call|>": "gigachat",
        "<|tools_prefix|>": "apertus",
        "{{ '<|start_header_id|>' }}{{ ' functools[' + calls | join(', ') + ']' }}": "firefunction",
        "{%- set toolsep_token = '<tool_sep{}>'.format(HYTK) %}<arg_key>": "hy3",
        '{{- "<|tool_call:begin|>" + tool_call.id }}': "solar_open",
        '{{- "<|tool_call_start|>[" + calls + "]<|tool_call_end|>" -}}': "lfm",
        "{%- set add_tokens = namespace(role_sep='<|role_sep|>') -%}{{ 'function call' }}": "gigachat3",
        "{%- set ns_token = ']<]minimax[>[' -%}": "minimax_m3",
        "{{ '<|python_tag|>' }}{{ '<function=' + name + '>' }}": "functionary_v3_1",
        "{{- '<atem:function_calls>' -}}{{ '<|start|>assistant to=self' }}": "atem",
        "{{ '<|start_header_id|>' }}{{ '>>>all\\n' + message['content'] }}": "functionary_v3_2",
        "{%- set content_parts = content.split('<tool_sep>') %}{{- '<param name=\"' ~ k ~ '\">' }}": "minicpm",
        "{{ '<|CHATBOT_TOKEN|>' }}{{ '\\nAction:\\n```json\\n[\\n' }}": "command_r_plus",
    }
    for template, family in signs.items():
        assert toolcalls.detect(override=None, template=template, architecture="").name == family


def test_tool_calls_json_reads_apriels_array_with_ids_and_minimax_lines() -> None:
    apriel = '<tool_calls>[{"name": "get_time", "arguments": {}, "id": "a1"}, {"name": "get_weather", "arguments": {"city": "X"}, "id": "b2"}]</tool_calls>'
    lines = '<tool_calls>\n{"name": "get_time", "arguments": {}}\n{"name": "get_weather", "arguments": {"city": "X"}}\n</tool_calls>'
    for text in (apriel, lines):
        for pieces in ([text], list(text)):
            assert calls(shaped("tool_calls_json", pieces)) == [
                ("get_time", {}),
                ("get_weather", {"city": "X"}),
            ]


def test_seed_oss_reasoning_in_its_own_tags() -> None:
    text = (
        "<seed:think>Check.</seed:think><seed:tool_call>\n<function=get_time>\n</function>\n</seed:tool_call>"
    )
    result = shaped("seed_oss", list(text), template="<seed:think>")
    assert calls(result) == [("get_time", {})]
    assert result.result().reasoning == "Check."


def test_kimi_k3_framing_reasoning_response_and_calls_over_any_split() -> None:
    o, c, s = "<|open|>", "<|close|>", "<|sep|>"
    text = (
        f"Let me see.{c}think{s}{o}response{s}Checking.{c}response{s}{o}tools{s}"
        f'{o}call tool="get_weather" index="1"{s}{o}argument key="tags" type="array"{s}["a"]{c}argument{s}'
        f"{c}call{s}{c}tools{s}{c}message{s}<|end_of_msg|>"
    )
    prompt = f'{o}message role="assistant"{s}{o}think{s}'
    for pieces in ([text], list(text)):
        fmt = toolcalls.get("kimi_k3")
        shaper = OutputShaper(fmt=fmt, tools=TOOLS, think=fmt.splitter("", prompt))
        out = Collector()
        for piece in pieces:
            out.add(shaper.shape(Chunk(text=piece)))
        out.add(shaper.shape(Chunk(finish_reason="stop", usage=Usage())))
        result = out.result()
        assert (result.reasoning, result.text) == ("Let me see.", "Checking.")
        assert [(t.name, json.loads(t.arguments)) for t in result.tool_calls] == [
            ("get_weather", {"tags": ["a"]})
        ]


def test_firefunction_reads_arguments_as_json_text_and_code_mentioning_functools_stays_text() -> None:
    text = ' functools[{"name": "get_weather", "arguments": "{\\"city\\": \\"X\\"}"}]'
    for pieces in ([text], list(text)):
        assert calls(shaped("firefunction", pieces)) == [("get_weather", {"city": "X"})]
    code = "Use functools.cache on the function."
    result = shaped("firefunction", list(code)).result()
    assert result.text == code and not result.tool_calls


def test_solar_open_channels_give_reasoning_text_and_calls() -> None:
    template = "{{ '<|begin|>assistant<|think|>' + message.reasoning + '<|end|>' }}"
    text = "<|think|>Say hello.<|end|><|begin|>assistant<|content|>Hello!"
    for pieces in ([text], list(text)):
        result = shaped("solar_open", pieces, template=template).result()
        assert (result.reasoning, result.text, result.tool_calls) == ("Say hello.", "Hello!", [])


def test_lfm_reads_python_calls_with_literals_and_evaluates_nothing() -> None:
    text = (
        "<|tool_call_start|>[get_weather(city='Jakarta', days=2, tags=['a', {'b': None}], x=true)]"
        "<|tool_call_end|>"
    )
    assert calls(shaped("lfm", [text])) == [
        ("get_weather", {"city": "Jakarta", "days": 2, "tags": ["a", {"b": None}], "x": True})
    ]
    hostile = "<|tool_call_start|>[get_weather(city=__import__('os').system('true'))]<|tool_call_end|>"
    result = shaped("lfm", [hostile]).result()
    assert not result.tool_calls and "__import__" in result.text


def test_minimax_m3_nested_arguments_are_typed_by_the_schema() -> None:
    ns = "]<]minimax[>["
    text = (
        f'{ns}<tool_call>\n{ns}<invoke name="get_weather">{ns}<city>Jakarta{ns}</city>{ns}<days>2{ns}</days>'
        f"{ns}<tags>{ns}<item>wet{ns}</item>{ns}<item>{ns}<k>v{ns}</k>{ns}</item>{ns}</tags>{ns}</invoke>\n"
        f"{ns}</tool_call>"
    )
    for pieces in ([text], list(text)):
        assert calls(shaped("minimax_m3", pieces)) == [
            ("get_weather", {"city": "Jakarta", "days": 2, "tags": ["wet", {"k": "v"}]})
        ]


def test_atem_messages_to_self_are_reasoning_and_headers_are_dropped() -> None:
    fmt = toolcalls.get("atem")
    text = (
        " to=self<|message|>Check the weather.<|eom|><|start|>assistant to=get_weather<|message|>"
        '<atem:function_calls>\n<atem:invoke name="get_weather">\n<atem:parameter name="city">X</atem:parameter>\n'
        "</atem:invoke>\n</atem:function_calls><|eom|>"
    )
    for pieces in ([text], list(text)):
        shaper = OutputShaper(fmt=fmt, tools=TOOLS, think=fmt.splitter("to=self", "<|start|>assistant"))
        out = Collector()
        for piece in pieces:
            out.add(shaper.shape(Chunk(text=piece)))
        out.add(shaper.shape(Chunk(finish_reason="stop", usage=Usage())))
        result = out.result()
        assert result.reasoning == "Check the weather." and result.text == ""
        assert calls(out) == [("get_weather", {"city": "X"})]
    plain = " to=user<|message|>Hello!<|eot|>"
    shaper = OutputShaper(fmt=fmt, tools=TOOLS, think=fmt.splitter("to=self", "<|start|>assistant"))
    out = Collector()
    for piece in plain:
        out.add(shaper.shape(Chunk(text=piece)))
    out.add(shaper.shape(Chunk(finish_reason="stop", usage=Usage())))
    assert out.result().text == "Hello!"


def test_functionary_v3_2_text_to_all_and_calls_after_the_prompts_recipient_marker() -> None:
    fmt = toolcalls.get("functionary_v3_2")
    text = 'all\nLet me look.>>>get_weather\n{"city": "X"}'
    for pieces in ([text], list(text)):
        shaper = OutputShaper(fmt=fmt, tools=TOOLS, think=fmt.splitter("", "<|end_header_id|>\n\n>>>"))
        out = Collector()
        for piece in pieces:
            out.add(shaper.shape(Chunk(text=piece)))
        out.add(shaper.shape(Chunk(finish_reason="stop", usage=Usage())))
        assert out.result().text == "Let me look."
        assert calls(out) == [("get_weather", {"city": "X"})]


def test_minicpm_reads_cdata_values_as_text() -> None:
    text = '<function name="get_weather"><param name="city"><![CDATA[a <b> & c]]></param><param name="days">2</param></function>'
    for pieces in ([text], list(text)):
        assert calls(shaped("minicpm", pieces)) == [("get_weather", {"city": "a <b> & c", "days": 2})]
