"""Gemma (lumbung's built-in convention): a fenced ``tool_call`` block holding one JSON call.

Gemma 3 has no tool-call tokens and Google's guide leaves the call syntax to the prompt; lumbung's
built-in Gemma template (templates/gemma.jinja) teaches this block, and constrained decoding makes a
forced call come out in it even from the base model::

    ```tool_call
    {"name": "get_weather", "arguments": {"city": "Jakarta"}}
    ```
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, ParsedCall, ToolFormat, lark_string, one_json_call
from lumbung.toolcalls.stream import JSON_HEAD
from lumbung.types import Tool

OPEN = "```tool_call\n"
CLOSE = "\n```"


class GemmaFormat(ToolFormat):
    name = "gemma"
    starts = (OPEN,)
    end = CLOSE
    stream_heads = (re.compile(r"\s*" + JSON_HEAD),)

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        return one_json_call(body, tools)

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        return OPEN + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + CLOSE

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        head = lark_string(f'{OPEN}{{"name": {json.dumps(tool.name)}, "arguments": ')
        return f"{head} {args_rule} {lark_string('}' + CLOSE)}"
