"""Cohere Command R+ (its tool-use template): ``Action:`` and a fenced JSON list of calls::

    Action:
    ```json
    [
        {"tool_name": "get_weather", "parameters": {"city": "Jakarta"}}
    ]```

The template's instructions write ``Action:`` and the fence on one line or two; both open a block.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, lark_string
from lumbung.toolcalls.json_list import JsonListFormat
from lumbung.types import Tool

OPENS, CLOSE = ("Action:\n```json", "Action: ```json"), "```"
_HEAD = r'\{\s*"tool_name"\s*:\s*(?P<jname>"(?:[^"\\]|\\.)*")\s*,\s*"parameters"\s*:\s*(?=\{)'


class CommandRPlusFormat(JsonListFormat):
    name = "command_r_plus"
    starts = OPENS
    end = CLOSE
    stream_heads = (re.compile(r"\s*\[\s*" + _HEAD),)
    stream_next = (re.compile(r"\s*\}\s*,\s*" + _HEAD),)

    def element(self, value: dict[str, Any]) -> tuple[str, Any] | None:
        name = value.get("tool_name")
        return (name, value.get("parameters", {})) if isinstance(name, str) else None

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        call = json.dumps({"tool_name": name, "parameters": arguments}, ensure_ascii=False)
        return f"{OPENS[0]}\n[{call}]{CLOSE}"

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        head = lark_string(f'{{"tool_name": {json.dumps(tool.name)}, "parameters": ')
        return f'{head} {args_rule} "}}"'
