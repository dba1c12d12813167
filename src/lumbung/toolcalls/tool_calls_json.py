"""JSON calls in a ``<tool_calls>`` block (MiniMax M1, ServiceNow Apriel 1.5/1.6), or in
``<TOOLCALL>`` (NVIDIA Nemotron Nano v2)::

    <tool_calls>
    {"name": "get_weather", "arguments": {"city": "Jakarta"}}
    </tool_calls>

One object per line (MiniMax) or a JSON array of them (Apriel, each with an ``id``; Nemotron).
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, ParsedCall, ToolFormat, call_from_json, json_values, lark_string
from lumbung.toolcalls.stream import JSON_HEAD
from lumbung.types import Tool

OPEN, CLOSE = "<tool_calls>", "</tool_calls>"


class ToolCallsJsonFormat(ToolFormat):
    name = "tool_calls_json"
    starts = (OPEN,)
    end = CLOSE
    stream_heads = (re.compile(r"\s*\[?\s*" + JSON_HEAD),)
    stream_next = (re.compile(r"\s*\}[\s,]*" + JSON_HEAD),)

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        values = json_values(body)
        if values and len(values) == 1 and isinstance(values[0], list):
            values = values[0]
        if not values:
            return None
        calls = [call_from_json(v, tools, ("arguments", "parameters")) for v in values]
        return None if any(c is None for c in calls) else [c for c in calls if c]

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        call = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
        return f"{self.starts[0]}\n{call}\n{self.end}"

    def grammar_prefix(self, lit: Literal) -> str:
        return f"{lit(self.starts[0])} {lark_string(chr(10))}"

    def grammar_suffix(self, lit: Literal) -> str:
        return f"{lark_string(chr(10))} {lit(self.end or '')}"

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        head = lark_string(f'{{"name": {json.dumps(tool.name)}, "arguments": ')
        return f'{head} {args_rule} "}}"'


class NemotronFormat(ToolCallsJsonFormat):
    name = "nemotron"
    starts = ("<TOOLCALL>",)
    end = "</TOOLCALL>"
