"""Swiss AI Apertus: a JSON array of one-key objects, the tool's name to its arguments::

<|tools_prefix|>[{"get_weather": {"city": "Jakarta"}}]<|tools_suffix|>
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, ParsedCall, ToolFormat, compact, lark_string
from lumbung.types import Tool

OPEN, CLOSE = "<|tools_prefix|>", "<|tools_suffix|>"
_NAME = r'\{\s*(?P<jname>"(?:[^"\\]|\\.)*")\s*:\s*(?=\{)'


class ApertusFormat(ToolFormat):
    name = "apertus"
    starts = (OPEN,)
    end = CLOSE
    separator = ", "
    stream_heads = (re.compile(r"\s*\[\s*" + _NAME),)
    stream_next = (re.compile(r"\s*\}\s*,\s*" + _NAME),)

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        try:
            values = json.loads(body)
        except ValueError:
            return None
        if not isinstance(values, list) or not values:
            return None
        calls = []
        for value in values:
            if not isinstance(value, dict) or len(value) != 1:
                return None
            [(name, args)] = value.items()
            if (tools and name not in tools) or not isinstance(args, dict):
                return None
            calls.append(ParsedCall(name, compact(args)))
        return calls

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        return f"{OPEN}{json.dumps([{name: arguments}], ensure_ascii=False)}{CLOSE}"

    def grammar_prefix(self, lit: Literal) -> str:
        return f'{lit(OPEN)} "["'

    def grammar_suffix(self, lit: Literal) -> str:
        return f'"]" {lit(CLOSE)}'

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        return f'{lark_string("{" + json.dumps(tool.name) + ": ")} {args_rule} "}}"'
