"""Swiss AI Apertus: a JSON array of one-key objects, the tool's name to its arguments::

<|tools_prefix|>[{"get_weather": {"city": "Jakarta"}}]<|tools_suffix|>
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, lark_string
from lumbung.toolcalls.json_list import JsonListFormat
from lumbung.types import Tool

OPEN, CLOSE = "<|tools_prefix|>", "<|tools_suffix|>"
_NAME = r'\{\s*(?P<jname>"(?:[^"\\]|\\.)*")\s*:\s*(?=\{)'


class ApertusFormat(JsonListFormat):
    name = "apertus"
    starts = (OPEN,)
    end = CLOSE
    stream_heads = (re.compile(r"\s*\[\s*" + _NAME),)
    stream_next = (re.compile(r"\s*\}\s*,\s*" + _NAME),)

    def element(self, value: dict[str, Any]) -> tuple[str, Any] | None:
        if len(value) != 1:
            return None
        [(name, args)] = value.items()
        return name, args

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        return f"{OPEN}{json.dumps([{name: arguments}], ensure_ascii=False)}{CLOSE}"

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        return f'{lark_string("{" + json.dumps(tool.name) + ": ")} {args_rule} "}}"'
