"""Upstage Solar Open: an answer in channels after ``<|begin|>assistant``; calls in the
``<|tool_calls|>`` channel, each between markers with its id, name and JSON arguments::

    <|tool_calls|><|tool_call:begin|>call_1<|tool_call:name|>get_weather<|tool_call:args|>{"city": "Jakarta"}<|tool_call:end|><|calls|>

Reasoning is the ``<|think|>`` channel, closed by ``<|end|>`` (the next channel opens with
``<|begin|>assistant``); text is the ``<|content|>`` channel.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, ParsedCall, ToolFormat, call_from_json, lark_string
from lumbung.toolcalls.reasoning import Splitter, ThinkSplitter
from lumbung.types import Tool

BEGIN, NAME, ARGS, END = (
    "<|tool_call:begin|>",
    "<|tool_call:name|>",
    "<|tool_call:args|>",
    "<|tool_call:end|>",
)
THINK, THINK_END = "<|think|>", "<|end|>"
_HEAD = rf"[^<]*{re.escape(NAME)}(?P<name>[^<]+){re.escape(ARGS)}\s*(?=\{{)"


class SolarOpenFormat(ToolFormat):
    name = "solar_open"
    starts = (BEGIN,)
    end = END
    ignore = ("<|tool_calls|>", "<|calls|>", "<|content|>", "<|begin|>assistant", "<|end|>")
    separator = ""
    stream_heads = (re.compile(_HEAD),)

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        _, found, rest = body.partition(NAME)
        name, found_args, args = rest.partition(ARGS)
        if not found or not found_args:
            return None
        try:
            value = {"name": name.strip(), "arguments": json.loads(args)}
        except ValueError:
            return None
        call = call_from_json(value, tools, ("arguments",))
        return None if call is None else [call]

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        args = json.dumps(arguments, ensure_ascii=False)
        return f"<|tool_calls|>{BEGIN}call_0{NAME}{name}{ARGS}{args}{END}<|calls|>"

    def grammar_prefix(self, lit: Literal) -> str:
        return lit("<|tool_calls|>")

    def grammar_suffix(self, lit: Literal) -> str:
        return lit("<|calls|>")

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        return f"{lit(BEGIN)} {lark_string('call_0')} {lit(NAME)} {lark_string(tool.name)} {lit(ARGS)} {args_rule} {lit(END)}"

    def splitter(self, template: str, prompt: str) -> Splitter | None:
        if THINK not in template:
            return super().splitter(template, prompt)
        return ThinkSplitter(inside=prompt.rstrip().endswith(THINK), opening=THINK, closing=THINK_END)
