"""Cohere Command R7B and Command A: a JSON array of calls between action tokens::

    <|START_ACTION|>[
        {"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"city": "Jakarta"}}
    ]<|END_ACTION|>

Reasoning is ``<|START_THINKING|>...<|END_THINKING|>``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, lark_string
from lumbung.toolcalls.json_list import JsonListFormat
from lumbung.toolcalls.reasoning import Splitter, ThinkSplitter
from lumbung.types import Tool

OPEN, CLOSE = "<|START_ACTION|>", "<|END_ACTION|>"
THINK, THINK_END = "<|START_THINKING|>", "<|END_THINKING|>"
_HEAD = (
    r'\{\s*"tool_call_id"\s*:\s*"[^"]*"\s*,\s*"tool_name"\s*:\s*(?P<jname>"(?:[^"\\]|\\.)*")\s*,'
    r'\s*"parameters"\s*:\s*(?=\{)'
)


class CommandRFormat(JsonListFormat):
    name = "command_r"
    starts = (OPEN,)
    end = CLOSE
    stream_heads = (re.compile(r"\s*\[\s*" + _HEAD),)
    stream_next = (re.compile(r"\s*\}\s*,\s*" + _HEAD),)

    def element(self, value: dict[str, Any]) -> tuple[str, Any] | None:
        name = value.get("tool_name")
        return (name, value.get("parameters", {})) if isinstance(name, str) else None

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        call = {"tool_call_id": "0", "tool_name": name, "parameters": arguments}
        return f"{OPEN}[{json.dumps(call, ensure_ascii=False)}]{CLOSE}"

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        head = lark_string(f'{{"tool_call_id": "0", "tool_name": {json.dumps(tool.name)}, "parameters": ')
        return f'{head} {args_rule} "}}"'

    def splitter(self, template: str, prompt: str) -> Splitter | None:
        if THINK not in template:
            return super().splitter(template, prompt)
        return ThinkSplitter(inside=prompt.rstrip().endswith(THINK), opening=THINK, closing=THINK_END)
