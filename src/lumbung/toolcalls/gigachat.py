"""GigaChat 3.1: one JSON call after ``<|function_call|>``, running to the end of the turn::

<|function_call|>{"name": "get_weather", "arguments": {"city": "Jakarta"}}
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, ParsedCall, ToolFormat, call_from_json, json_values, lark_string
from lumbung.toolcalls.stream import JSON_HEAD
from lumbung.types import Tool

OPEN = "<|function_call|>"
ROLE = "function call<|role_sep|>"


class GigaChatFormat(ToolFormat):
    name = "gigachat"
    starts = (OPEN,)
    end = None
    stream_heads = (re.compile(r"\s*" + JSON_HEAD),)

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        values = json_values(body)
        if not values:
            return None
        calls = [call_from_json(v, tools, ("arguments", "parameters")) for v in values]
        return None if any(c is None for c in calls) else [c for c in calls if c]

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        return OPEN + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        head = lark_string(f'{{"name": {json.dumps(tool.name)}, "arguments": ')
        return f'{lit(OPEN)} {head} {args_rule} "}}"'


class GigaChat3Format(GigaChatFormat):
    """GigaChat 3 (before 3.1): the call is a message of its own, in the ``function call`` role::

    <|message_sep|>

    function call<|role_sep|>
    {"name": "get_weather", "arguments": {"city": "Jakarta"}}
    """

    name = "gigachat3"
    starts = (ROLE,)
    ignore = ("<|message_sep|>", "assistant<|role_sep|>")  # the frames of the messages around it

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        return f"<|message_sep|>\n\n{ROLE}\n" + json.dumps(
            {"name": name, "arguments": arguments}, ensure_ascii=False
        )

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        head = lark_string(f'\n{{"name": {json.dumps(tool.name)}, "arguments": ')
        return f'{lit(ROLE)} {head} {args_rule} "}}"'
