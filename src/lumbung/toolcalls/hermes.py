"""Qwen 2.5 / Qwen 3 (Hermes style): ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``.

Qwen's own chat templates render ``tools`` and ``tool_calls``; several calls are consecutive blocks.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, ParsedCall, ToolFormat, lark_string, one_json_call
from lumbung.toolcalls.stream import JSON_HEAD
from lumbung.types import Tool


class HermesFormat(ToolFormat):
    name = "hermes"
    starts = ("<tool_call>",)
    end = "</tool_call>"
    stream_heads = (re.compile(r"\s*" + JSON_HEAD),)

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        return one_json_call(body, tools)

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
        return f"<tool_call>\n{body}\n</tool_call>"

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        head = lark_string(f'\n{{"name": {json.dumps(tool.name)}, "arguments": ')
        return f'{lit("<tool_call>")} {head} {args_rule} "}}\\n" {lit("</tool_call>")}'
