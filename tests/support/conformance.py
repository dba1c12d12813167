# ruff: noqa: RUF001  (DeepSeek's markers use fullwidth bars on purpose)
"""The tool-calling conformance matrix (family x feature) in docs/api-compatibility.md.

Every cell is computed by running the real parser, grammar and reasoning splitter on outputs written
in the family's documented format; nothing is typed by hand. ``tests/unit/test_toolcalls_conformance.py``
fails when the document is stale; ``python -m tests.support.conformance`` rewrites it.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import llguidance

from lumbung import toolcalls
from lumbung.engines.base import Collector
from lumbung.engines.llamacpp.grammar import GrammarCompiler, lark_json
from lumbung.engines.llamacpp.model import LlamaModel
from lumbung.errors import ModelOutputError
from lumbung.store.embedded import GEMMA, embedded_model_path
from lumbung.toolcalls.base import Parsed, ToolFormat, lark_string
from lumbung.toolcalls.output import OutputShaper
from lumbung.toolcalls.parsed import joined
from lumbung.types import Chunk, Tool, Usage

DOC = Path(__file__).resolve().parents[2] / "docs" / "api-compatibility.md"
BEGIN, END = "<!-- matrix: tool-calls (generated) -->", "<!-- end matrix -->"
TOOLS = [
    Tool(
        "get_weather",
        None,
        {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
            "required": ["city", "days"],
            "additionalProperties": False,
        },
    ),
    Tool(
        "get_time",
        None,
        {
            "type": "object",
            "properties": {"tz": {"type": "string"}},
            "required": ["tz"],
            "additionalProperties": False,
        },
    ),
]
W = ("get_weather", {"city": "Jakarta", "days": 3})
T = ("get_time", {"tz": "WIB"})
_A = '{"city":"Jakarta","days":3}'


def _dsml(wrapper: str) -> dict[str, str]:
    d = "｜DSML｜"
    weather = (
        f'<{d}invoke name="get_weather">\n<{d}parameter name="city" string="true">Jakarta</{d}parameter>\n'
        f'<{d}parameter name="days" string="false">3</{d}parameter>\n</{d}invoke>'
    )
    time = (
        f'<{d}invoke name="get_time">\n<{d}parameter name="tz" string="true">WIB</{d}parameter>\n</{d}invoke>'
    )
    return {
        "one": f"<{d}{wrapper}>\n{weather}\n</{d}{wrapper}>",
        "two": f"<{d}{wrapper}>\n{weather}\n{time}\n</{d}{wrapper}>",
        "bad": f'<{d}{wrapper}>\n<{d}invoke name="get_weather">\n<{d}parameter name="city" string="true">Jak</{d}invoke>',
        "forced": f"<{d}{wrapper}>\n{weather}\n</{d}{wrapper}>",
    }


def _kimi_k3() -> dict[str, str]:
    o, c, s = "<|open|>", "<|close|>", "<|sep|>"
    weather = (
        f'{o}call tool="get_weather" index="1"{s}{o}argument key="city" type="string"{s}Jakarta{c}argument{s}'
        f'{o}argument key="days" type="number"{s}3{c}argument{s}{c}call{s}'
    )
    time = f'{o}call tool="get_time" index="2"{s}{o}argument key="tz" type="string"{s}WIB{c}argument{s}{c}call{s}'
    return {
        "one": f"{o}response{s}{c}response{s}{o}tools{s}{weather}{c}tools{s}{c}message{s}",
        "two": f"{o}tools{s}{weather}{time}{c}tools{s}",
        "bad": f'{o}tools{s}{o}call tool="get_weather" index="1"{s}{o}argument key="city" type="string"{s}Jak{c}call{s}',
        "forced": f'{o}tools{s}{o}call tool="get_weather" index="1"{s}{o}argument key="city" type="string"{s}Jakarta'
        f'{c}argument{s}{o}argument key="days" type="number"{s}3{c}argument{s}{c}call{s}{c}tools{s}',
    }


# Per family: one call, two calls in one message, a malformed call, and a forced call as its grammar writes it.
SAMPLES: dict[str, dict[str, str]] = {
    "hermes": {
        "one": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Jakarta", "days": 3}}\n</tool_call>',
        "two": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Jakarta", "days": 3}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {"tz": "WIB"}}\n</tool_call>',
        "bad": '<tool_call>\n{"name": "get_weather", "arguments": {"city": \n</tool_call>',
        "forced": f'<tool_call>\n{{"name": "get_weather", "arguments": {_A}}}\n</tool_call>',
    },
    "qwen3_coder": {
        "one": "<tool_call>\n<function=get_weather>\n<parameter=city>\nJakarta\n</parameter>\n<parameter=days>\n3\n"
        "</parameter>\n</function>\n</tool_call>",
        "two": "<tool_call>\n<function=get_weather>\n<parameter=city>\nJakarta\n</parameter>\n<parameter=days>\n3\n"
        "</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=get_time>\n<parameter=tz>\nWIB\n</parameter>\n"
        "</function>\n</tool_call>",
        "bad": "<tool_call>\n<function=get_weather>\n<parameter=city>\nJakarta\n</tool_call>",
        "forced": "<tool_call>\n<function=get_weather>\n<parameter=city>\nJakarta\n</parameter>\n<parameter=days>\n3\n"
        "</parameter>\n</function>\n</tool_call>",
    },
    "llama3": {
        "one": '{"name": "get_weather", "parameters": {"city": "Jakarta", "days": 3}}',
        "two": '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Jakarta", "days": 3}}; '
        '{"name": "get_time", "parameters": {"tz": "WIB"}}',
        "bad": '{"name": "get_weather", "parameters": {"city": "Jak',
        "forced": f'{{"name": "get_weather", "parameters": {_A}}}',
    },
    "mistral": {
        "one": '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Jakarta", "days": 3}}]',
        "two": '[TOOL_CALLS]get_weather[ARGS]{"city": "Jakarta", "days": 3}[TOOL_CALLS]get_time[ARGS]{"tz": "WIB"}',
        "bad": '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city"',
        "forced": f'[TOOL_CALLS][{{"name": "get_weather", "arguments": {_A}}}]',
    },
    "deepseek": {
        "one": "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
        '{"city": "Jakarta", "days": 3}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
        "two": "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
        '{"city": "Jakarta", "days": 3}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>get_time<｜tool▁sep｜>'
        '{"tz": "WIB"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
        "bad": '<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{"city"<｜tool▁call▁end｜>',
        "forced": "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
        f"{_A}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
    },
    "harmony": {
        "one": '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Jakarta", "days": 3}<|call|>',
        "two": "<|channel|>analysis<|message|>Both.<|end|><|start|>assistant to=functions.get_weather<|channel|>commentary json"
        '<|message|>{"city": "Jakarta", "days": 3}<|call|><|start|>assistant<|channel|>commentary to=functions.get_time '
        '<|constrain|>json<|message|>{"tz": "WIB"}<|call|>',
        "bad": '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": <|call|>',
        "forced": f"<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{_A}<|call|>",
    },
    "gemma4": {
        "one": '<|tool_call>call:get_weather{city:<|"|>Jakarta<|"|>,days:3}<tool_call|>',
        "two": '<|tool_call>call:get_weather{city:<|"|>Jakarta<|"|>,days:3}<tool_call|>'
        '<|tool_call>call:get_time{tz:<|"|>WIB<|"|>}<tool_call|>',
        "bad": '<|tool_call>call:get_weather{city:<|"|>Jakarta<tool_call|>',
        "forced": f"<|tool_call>call:get_weather{_A}<tool_call|>",
    },
    "glm": {
        "one": "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Jakarta</arg_value>\n<arg_key>days</arg_key>\n"
        "<arg_value>3</arg_value>\n</tool_call>",
        "two": "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Jakarta</arg_value>\n<arg_key>days</arg_key>\n"
        "<arg_value>3</arg_value>\n</tool_call>\n<tool_call>get_time<arg_key>tz</arg_key><arg_value>WIB</arg_value></tool_call>",
        "bad": "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Jakarta</tool_call>",
        "forced": "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Jakarta</arg_value>\n<arg_key>days</arg_key>\n"
        "<arg_value>3</arg_value>\n</tool_call>",
    },
    "kimi_k2": {
        "one": "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>"
        '{"city": "Jakarta", "days": 3}<|tool_call_end|><|tool_calls_section_end|>',
        "two": "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>"
        '{"city": "Jakarta", "days": 3}<|tool_call_end|><|tool_call_begin|>functions.get_time:1'
        '<|tool_call_argument_begin|>{"tz": "WIB"}<|tool_call_end|><|tool_calls_section_end|>',
        "bad": "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>"
        '{"city": <|tool_call_end|>',
        "forced": "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>"
        f"{_A}<|tool_call_end|><|tool_calls_section_end|>",
    },
    "minimax_m2": {
        "one": '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Jakarta</parameter>\n'
        '<parameter name="days">3</parameter>\n</invoke>\n</minimax:tool_call>',
        "two": '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Jakarta</parameter>\n'
        '<parameter name="days">3</parameter>\n</invoke>\n<invoke name="get_time">\n<parameter name="tz">WIB'
        "</parameter>\n</invoke>\n</minimax:tool_call>",
        "bad": '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Jakarta</invoke>',
        "forced": '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Jakarta</parameter>\n'
        '<parameter name="days">3</parameter>\n</invoke>\n</minimax:tool_call>',
    },
    "seed_oss": {
        "one": "<seed:tool_call>\n<function=get_weather>\n<parameter=city>Jakarta</parameter>\n<parameter=days>3"
        "</parameter>\n</function>\n</seed:tool_call>",
        "two": "<seed:tool_call>\n<function=get_weather>\n<parameter=city>Jakarta</parameter>\n<parameter=days>3"
        "</parameter>\n</function>\n</seed:tool_call>\n<seed:tool_call>\n<function=get_time>\n<parameter=tz>WIB"
        "</parameter>\n</function>\n</seed:tool_call>",
        "bad": "<seed:tool_call>\n<function=get_weather>\n<parameter=city>Jakarta</seed:tool_call>",
        "forced": "<seed:tool_call>\n<function=get_weather>\n<parameter=city>Jakarta</parameter>\n<parameter=days>3"
        "</parameter>\n</function>\n</seed:tool_call>",
    },
    "tool_calls_json": {
        "one": '<tool_calls>\n{"name": "get_weather", "arguments": {"city": "Jakarta", "days": 3}}\n</tool_calls>',
        "two": '<tool_calls>\n{"name": "get_weather", "arguments": {"city": "Jakarta", "days": 3}}\n'
        '{"name": "get_time", "arguments": {"tz": "WIB"}}\n</tool_calls>',
        "bad": '<tool_calls>\n{"name": "get_weather", "arguments": {"city": </tool_calls>',
        "forced": f'<tool_calls>\n{{"name": "get_weather", "arguments": {_A}}}\n</tool_calls>',
    },
    "command_r": {
        "one": '<|START_ACTION|>[\n    {"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"city": "Jakarta", '
        '"days": 3}}\n]<|END_ACTION|>',
        "two": '<|START_ACTION|>[\n    {"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"city": "Jakarta", '
        '"days": 3}},\n    {"tool_call_id": "1", "tool_name": "get_time", "parameters": {"tz": "WIB"}}\n]<|END_ACTION|>',
        "bad": '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"city": <|END_ACTION|>',
        "forced": f'<|START_ACTION|>[{{"tool_call_id": "0", "tool_name": "get_weather", "parameters": {_A}}}]<|END_ACTION|>',
    },
    "kimi_k3": _kimi_k3(),
    "nemotron": {
        "one": '<TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Jakarta", "days": 3}}]</TOOLCALL>',
        "two": '<TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Jakarta", "days": 3}}, '
        '{"name": "get_time", "arguments": {"tz": "WIB"}}]</TOOLCALL>',
        "bad": '<TOOLCALL>[{"name": "get_weather", "arguments": {"city": </TOOLCALL>',
        "forced": f'<TOOLCALL>\n{{"name": "get_weather", "arguments": {_A}}}\n</TOOLCALL>',
    },
    "gigachat": {
        "one": '<|function_call|>{"name": "get_weather", "arguments": {"city": "Jakarta", "days": 3}}',
        "two": '<|function_call|>{"name": "get_weather", "arguments": {"city": "Jakarta", "days": 3}}'
        '<|function_call|>{"name": "get_time", "arguments": {"tz": "WIB"}}',
        "bad": '<|function_call|>{"name": "get_weather", "arguments": {"city": "Jak',
        "forced": f'<|function_call|>{{"name": "get_weather", "arguments": {_A}}}',
    },
    "apertus": {
        "one": '<|tools_prefix|>[{"get_weather": {"city": "Jakarta", "days": 3}}]<|tools_suffix|>',
        "two": '<|tools_prefix|>[{"get_weather": {"city": "Jakarta", "days": 3}}, {"get_time": {"tz": "WIB"}}]'
        "<|tools_suffix|>",
        "bad": '<|tools_prefix|>[{"get_weather": {"city": "Jakarta"]<|tools_suffix|>',
        "forced": f'<|tools_prefix|>[{{"get_weather": {_A}}}]<|tools_suffix|>',
    },
    "command_r_plus": {
        "one": 'Action:\n```json\n[\n    {\n        "tool_name": "get_weather",\n        "parameters": '
        '{"city": "Jakarta", "days": 3}\n    }\n]```',
        "two": 'Action: ```json\n[{"tool_name": "get_weather", "parameters": {"city": "Jakarta", "days": 3}}, '
        '{"tool_name": "get_time", "parameters": {"tz": "WIB"}}]\n```',
        "bad": 'Action:\n```json\n[{"tool_name": "get_weather", "parameters": {"city": ```',
        "forced": f'Action:\n```json[{{"tool_name": "get_weather", "parameters": {_A}}}]```',
    },
    "hy3": {
        "one": "<tool_calls:opensource>\n<tool_call:opensource>get_weather<tool_sep:opensource>\n"
        "<arg_key:opensource>city</arg_key:opensource>\n<arg_value:opensource>Jakarta</arg_value:opensource>\n"
        "<arg_key:opensource>days</arg_key:opensource>\n<arg_value:opensource>3</arg_value:opensource>\n"
        "</tool_call:opensource>\n</tool_calls:opensource>",
        "two": "<tool_calls:opensource>\n<tool_call:opensource>get_weather<tool_sep:opensource>\n"
        "<arg_key:opensource>city</arg_key:opensource>\n<arg_value:opensource>Jakarta</arg_value:opensource>\n"
        "<arg_key:opensource>days</arg_key:opensource>\n<arg_value:opensource>3</arg_value:opensource>\n"
        "</tool_call:opensource>\n<tool_call:opensource>get_time<tool_sep:opensource>\n"
        "<arg_key:opensource>tz</arg_key:opensource>\n<arg_value:opensource>WIB</arg_value:opensource>\n"
        "</tool_call:opensource>\n</tool_calls:opensource>",
        "bad": "<tool_call:opensource>get_weather<tool_sep:opensource>\n<arg_key:opensource>city"
        "</tool_call:opensource>",
        "forced": "<tool_call:opensource>get_weather<tool_sep:opensource>\n"
        "<arg_key:opensource>city</arg_key:opensource>\n<arg_value:opensource>Jakarta</arg_value:opensource>\n"
        "<arg_key:opensource>days</arg_key:opensource>\n<arg_value:opensource>3</arg_value:opensource>\n"
        "</tool_call:opensource>",
    },
    "solar_open": {
        "one": "<|tool_calls|><|tool_call:begin|>c1<|tool_call:name|>get_weather<|tool_call:args|>"
        '{"city": "Jakarta", "days": 3}<|tool_call:end|><|calls|>',
        "two": "<|tool_calls|><|tool_call:begin|>c1<|tool_call:name|>get_weather<|tool_call:args|>"
        '{"city": "Jakarta", "days": 3}<|tool_call:end|><|tool_call:begin|>c2<|tool_call:name|>get_time'
        '<|tool_call:args|>{"tz": "WIB"}<|tool_call:end|><|calls|>',
        "bad": '<|tool_calls|><|tool_call:begin|>c1<|tool_call:name|>get_weather<|tool_call:args|>{"city": '
        "<|tool_call:end|>",
        "forced": f"<|tool_calls|><|tool_call:begin|>call_0<|tool_call:name|>get_weather<|tool_call:args|>{_A}"
        "<|tool_call:end|><|calls|>",
    },
    "lfm": {
        "one": "<|tool_call_start|>[get_weather(city='Jakarta', days=3)]<|tool_call_end|>",
        "two": "<|tool_call_start|>[get_weather(city='Jakarta', days=3), get_time(tz='WIB')]<|tool_call_end|>",
        "bad": "<|tool_call_start|>[get_weather(city='Jakarta', days=]<|tool_call_end|>",
        "forced": f"<|tool_call_start|>[get_weather(**{_A})]<|tool_call_end|>",
    },
    "gigachat3": {
        "one": '<|message_sep|>\n\nfunction call<|role_sep|>\n{"name": "get_weather", "arguments": '
        '{"city": "Jakarta", "days": 3}}',
        "two": '<|message_sep|>\n\nfunction call<|role_sep|>\n{"name": "get_weather", "arguments": '
        '{"city": "Jakarta", "days": 3}}<|message_sep|>\n\nfunction call<|role_sep|>\n'
        '{"name": "get_time", "arguments": {"tz": "WIB"}}',
        "bad": '<|message_sep|>\n\nfunction call<|role_sep|>\n{"name": "get_weather", "arguments": {"city": "Jak',
        "forced": f'function call<|role_sep|>\n{{"name": "get_weather", "arguments": {_A}}}',
    },
    "minimax_m3": {
        "one": ']<]minimax[>[<tool_call>\n]<]minimax[>[<invoke name="get_weather">]<]minimax[>[<city>Jakarta'
        "]<]minimax[>[</city>]<]minimax[>[<days>3]<]minimax[>[</days>]<]minimax[>[</invoke>\n]<]minimax[>[</tool_call>",
        "two": ']<]minimax[>[<tool_call>\n]<]minimax[>[<invoke name="get_weather">]<]minimax[>[<city>Jakarta'
        "]<]minimax[>[</city>]<]minimax[>[<days>3]<]minimax[>[</days>]<]minimax[>[</invoke>\n"
        ']<]minimax[>[<invoke name="get_time">]<]minimax[>[<tz>WIB]<]minimax[>[</tz>]<]minimax[>[</invoke>\n'
        "]<]minimax[>[</tool_call>",
        "bad": ']<]minimax[>[<tool_call>\n]<]minimax[>[<invoke name="get_weather">]<]minimax[>[<city>Jakarta'
        "]<]minimax[>[</invoke>\n]<]minimax[>[</tool_call>",
        "forced": ']<]minimax[>[<tool_call>\n]<]minimax[>[<invoke name="get_weather">]<]minimax[>[<city>Jakarta'
        "]<]minimax[>[</city>]<]minimax[>[<days>3]<]minimax[>[</days>]<]minimax[>[</invoke>\n]<]minimax[>[</tool_call>",
    },
    "functionary_v3_1": {
        "one": '<function=get_weather>{"city": "Jakarta", "days": 3}</function>',
        "two": '<function=get_weather>{"city": "Jakarta", "days": 3}</function>'
        '<function=get_time>{"tz": "WIB"}</function>',
        "bad": '<function=get_weather>{"city": "Jak</function>',
        "forced": f"<function=get_weather>{_A}</function>",
    },
    "atem": {
        "one": '<atem:function_calls>\n<atem:invoke name="get_weather">\n<atem:parameter name="city">Jakarta</atem:parameter>\n<atem:parameter name="days">3</atem:parameter>\n</atem:invoke>\n</atem:function_calls>',
        "two": '<atem:function_calls>\n<atem:invoke name="get_weather">\n<atem:parameter name="city">Jakarta</atem:parameter>\n<atem:parameter name="days">3</atem:parameter>\n</atem:invoke>\n<atem:invoke name="get_time">\n<atem:parameter name="tz">WIB</atem:parameter>\n</atem:invoke>\n</atem:function_calls>',
        "bad": '<atem:function_calls>\n<atem:invoke name="get_weather">\n<atem:parameter name="city">Jak</atem:invoke>\n</atem:function_calls>',
        "forced": '<atem:function_calls>\n<atem:invoke name="get_weather">\n<atem:parameter name="city">Jakarta</atem:parameter>\n<atem:parameter name="days">3</atem:parameter>\n</atem:invoke>\n</atem:function_calls>',
    },
    "functionary_v3_2": {
        "one": '>>>get_weather\n{"city": "Jakarta", "days": 3}',
        "two": '>>>get_weather\n{"city": "Jakarta", "days": 3}>>>get_time\n{"tz": "WIB"}',
        "bad": '>>>get_weather\n{"city": "Jak',
        "forced": f">>>get_weather\n{_A}",
    },
    "minicpm": {
        "one": '<function name="get_weather"><param name="city">Jakarta</param><param name="days">3</param></function>',
        "two": '<function name="get_weather"><param name="city">Jakarta</param><param name="days">3</param></function>\n'
        '<function name="get_time"><param name="tz">WIB</param></function>',
        "bad": '<function name="get_weather"><param name="city">Jakarta</function>',
        "forced": '<function name="get_weather"><param name="city">Jakarta</param><param name="days">3</param></function>',
    },
    "firefunction": {
        "one": ' functools[{"name": "get_weather", "arguments": {"city": "Jakarta", "days": 3}}]',
        "two": ' functools[{"name": "get_weather", "arguments": {"city": "Jakarta", "days": 3}}, '
        '{"name": "get_time", "arguments": {"tz": "WIB"}}]',
        "bad": ' functools[{"name": "get_weather", "arguments": {"city": "Jak',
        "forced": f'functools[{{"name": "get_weather", "arguments": {_A}}}]',
    },
    "deepseek_v3_2": _dsml("function_calls"),
    "deepseek_v4": _dsml("tool_calls"),
    "gemma": {
        "one": '```tool_call\n{"name": "get_weather", "arguments": {"city": "Jakarta", "days": 3}}\n```',
        "two": '```tool_call\n{"name": "get_weather", "arguments": {"city": "Jakarta", "days": 3}}\n```\n'
        '```tool_call\n{"name": "get_time", "arguments": {"tz": "WIB"}}\n```',
        "bad": '```tool_call\n{"name": "get_weather", "arguments": {"city": "Jakarta"\n```',
        "forced": f'```tool_call\n{{"name": "get_weather", "arguments": {_A}}}\n```',
    },
}


def _steps(fmt: ToolFormat, pieces: list[str]) -> list[Parsed]:
    """The parser's steps, behind the family's own framing splitter where it has one (gpt-oss's
    channels), as the backend runs them; reasoning is dropped here."""
    parser = fmt.parser(TOOLS)
    framing = fmt.splitter("", "")
    if framing is None:
        return [*(parser.feed(p) for p in pieces), parser.finish()]
    steps = [parser.feed(framing.feed(p)[1]) for p in pieces]
    rest = parser.feed(framing.finish()[1])
    end = parser.finish()
    return [*steps, Parsed(rest.text + end.text, rest.calls + end.calls)]


def _run(fmt: ToolFormat, pieces: list[str]) -> Parsed:
    """Text and calls, argument fragments joined onto their call."""
    steps = _steps(fmt, pieces)
    return Parsed("".join(s.text for s in steps), joined([c for s in steps for c in s.calls]))


def _calls(parsed: Parsed) -> list[tuple[str, object]]:
    return [(c.name, json.loads(c.arguments)) for c in parsed.calls]


def parsed_calls(fmt: ToolFormat, text: str) -> list[tuple[str, object]]:
    """The calls in ``text``, read whole the way the backend reads them."""
    return _calls(_run(fmt, [text]))


def one_call(fmt: ToolFormat, _: GrammarCompiler) -> bool:
    got = _run(fmt, [SAMPLES[fmt.name]["one"]])
    return _calls(got) == [W] and got.text == ""


def parallel_calls(fmt: ToolFormat, _: GrammarCompiler) -> bool:
    return _calls(_run(fmt, [SAMPLES[fmt.name]["two"]])) == [W, T]


def any_split(fmt: ToolFormat, _: GrammarCompiler) -> bool:
    text = SAMPLES[fmt.name]["two"]
    whole = _run(fmt, [text])
    splits = [[text[:i], text[i:]] for i in range(1, len(text))] + [list(text)]
    return all(_run(fmt, s) == whole for s in splits)


def arguments_streamed(fmt: ToolFormat, _: GrammarCompiler) -> bool | str:
    """Fed a character at a time, each call's arguments arrive in several fragments, before the
    call's block closes, and join into the whole call's arguments; "whole" where the format sends
    whole calls."""
    text = SAMPLES[fmt.name]["two"]
    steps = _steps(fmt, list(text))
    fragments = [c for step in steps[:-1] for c in step.calls if not c.new]
    if fmt.streamer({}) is None:
        return "whole" if not fragments and _run(fmt, list(text)) == _run(fmt, [text]) else False
    joined = _run(fmt, list(text)).calls
    per_call = [sum(1 for c in fragments if c.arguments) for _ in joined]
    return len(fragments) > len(joined) and all(per_call) and joined == _run(fmt, [text]).calls


def malformed_safe(fmt: ToolFormat, _: GrammarCompiler) -> bool:
    """Whole, a malformed call is text; streamed, it is text or (once part of it went out) an
    error, never a call."""
    bad = SAMPLES[fmt.name]["bad"]
    for pieces in ([bad], list(bad)):
        try:
            got = _run(fmt, pieces)
        except ModelOutputError:
            continue
        if got.calls or not got.text.strip():
            return False
    return True


def forced_grammar(fmt: ToolFormat, compiler: GrammarCompiler) -> bool:
    grammar = llguidance.LLMatcher.grammar_from_lark(
        fmt.grammar(TOOLS, max_calls=1, lit=lark_string, json_rule=lark_json)
    )

    def accepts(text: str) -> bool:
        matcher = compiler.matcher(grammar, "conformance")
        return matcher.consume_tokens(compiler.tokenizer.greedy_tokenize(text)) and matcher.is_accepting()

    text = SAMPLES[fmt.name]["forced"]
    ok = accepts(text) and _calls(_run(fmt, [text])) == [W]
    return (
        ok and not accepts(text.replace("get_weather", "get_wether")) and not accepts(text.replace("3", "0"))
    )


def history_round_trip(fmt: ToolFormat, _: GrammarCompiler) -> bool:
    return _calls(_run(fmt, [fmt.render_call(*T)])) == [T]


# How each family's reasoning is framed (``<think>`` unless named here), with the splitter for it.
REASONING = {
    "harmony": ("<|channel|>analysis<|message|>", "<|end|><|start|>assistant"),
    "kimi_k3": ("<|open|>think<|sep|>", "<|close|>think<|sep|>"),
}


def reasoning_split(fmt: ToolFormat, _: GrammarCompiler) -> bool:
    opening, closing = REASONING.get(fmt.name, ("<think>", "</think>\n"))
    text = opening + "I could call get_time, or write " + SAMPLES[fmt.name]["one"][:12] + closing
    text += SAMPLES[fmt.name]["two"]
    shaper = OutputShaper(fmt=fmt, tools=TOOLS, think=fmt.splitter("<think>", ""))
    chunks = [shaper.shape(Chunk(text=ch)) for ch in text] + [
        shaper.shape(Chunk(finish_reason="stop", usage=Usage()))
    ]
    reasoning = "".join(c.reasoning for c in chunks)
    collector = Collector()
    for chunk in chunks:
        collector.add(chunk)
    calls = [(c.name, json.loads(c.arguments)) for c in collector.tool_calls]
    content = "".join(c.text for c in chunks)
    return (
        calls == [W, T]
        and content == ""
        and reasoning.startswith("I could")
        and chunks[-1].finish_reason == "tool_calls"
    )


FEATURES: list[tuple[str, Callable[[ToolFormat, GrammarCompiler], bool | str]]] = [
    ("one call", one_call),
    ("parallel calls", parallel_calls),
    ("stream split anywhere", any_split),
    ("arguments streamed", arguments_streamed),
    ("malformed call -> text or error", malformed_safe),
    ("forced call (grammar)", forced_grammar),
    ("history re-rendered", history_round_trip),
    ("reasoning split off", reasoning_split),
]


def _cell(result: bool | str) -> str:
    if isinstance(result, str):
        return result
    return "yes" if result else "**no**"


def matrix(compiler: GrammarCompiler) -> str:
    head = "| family | " + " | ".join(name for name, _ in FEATURES) + " |"
    rule = "|---" * (len(FEATURES) + 1) + "|"
    rows = []
    for family in toolcalls.FORMATS:
        fmt = toolcalls.get(family)
        cells = [_cell(check(fmt, compiler)) for _, check in FEATURES]
        rows.append(f"| `{family}` | " + " | ".join(cells) + " |")
    return "\n".join([BEGIN, head, rule, *rows, END])


def documented() -> str:
    found = re.search(re.escape(BEGIN) + r".*?" + re.escape(END), DOC.read_text(), re.S)
    return found.group(0) if found else ""


def write(generated: str) -> None:
    text = DOC.read_text()
    text = (
        text.replace(documented(), generated)
        if documented()
        else text.rstrip("\n") + "\n\n" + generated + "\n"
    )
    DOC.write_text(text)


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        vocab = LlamaModel(embedded_model_path(Path(home), GEMMA), vocab_only=True)
        try:
            write(matrix(GrammarCompiler(vocab, [])))
        finally:
            vocab.close()
    print(f"wrote the tool-call matrix to {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
