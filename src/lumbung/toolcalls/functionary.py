"""MeetKai Functionary v3.1 (on Llama 3.1): each call a ``<function=NAME>`` element around its JSON
arguments::

    <function=get_weather>{"city": "Jakarta"}</function>
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, ParsedCall, ToolFormat, call_from_json, lark_string
from lumbung.types import Tool

OPEN, CLOSE = "<function=", "</function>"


class FunctionaryV31Format(ToolFormat):
    name = "functionary_v3_1"
    starts = (OPEN,)
    end = CLOSE
    separator = ""
    stream_heads = (re.compile(r"(?P<name>[^>\s]+)>\s*(?=\{)"),)

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        name, found, args = body.partition(">")
        if not found:
            return None
        call = call_from_json({"name": name.strip(), "arguments": args.strip()}, tools, ("arguments",))
        return None if call is None else [call]

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        return f"{OPEN}{name}>{json.dumps(arguments, ensure_ascii=False)}{CLOSE}"

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        return f"{lark_string(OPEN + tool.name + '>')} {args_rule} {lark_string(CLOSE)}"
