"""Mistral: ``[TOOL_CALLS]`` then a JSON array of calls (v3 tokenizers), or ``name[ARGS]{...}``
per call (v11+ tokenizers, ``[TOOL_CALLS]`` before each). The calls run to the end of the answer.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, ParsedCall, ToolFormat, call_from_json, lark_string, named_call
from lumbung.toolcalls.stream import JSON_HEAD
from lumbung.types import Tool


class MistralFormat(ToolFormat):
    name = "mistral"
    starts = ("[TOOL_CALLS]",)
    end = None
    separator = ", "
    stream_heads = (
        re.compile(r"\s*\[\s*" + JSON_HEAD),  # v3: a JSON array of calls
        re.compile(r"\s*(?P<name>[^\[\]{}]+?)(?:\[CALL_ID\][^\[]*)?\[ARGS\]\s*(?=\{)"),  # v11
    )
    stream_next = (re.compile(r"\s*\}\s*,\s*" + JSON_HEAD),)

    @property
    def trigger(self) -> str | None:
        return "[TOOL_CALLS]"

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        body = body.strip()
        if body.startswith("["):
            try:
                values = json.loads(body)
            except ValueError:
                return None
            if not isinstance(values, list) or not values:
                return None
            calls = [call_from_json(v, tools, ("arguments", "parameters")) for v in values]
            return None if any(c is None for c in calls) else [c for c in calls if c]
        name, sep, raw = body.partition("[ARGS]")
        return named_call(name.split("[CALL_ID]")[0], raw, tools) if sep else None

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        return "[TOOL_CALLS]" + json.dumps([{"name": name, "arguments": arguments}], ensure_ascii=False)

    def grammar_prefix(self, lit: Literal) -> str:
        return f'{lit("[TOOL_CALLS]")} "["'

    def grammar_suffix(self, lit: Literal) -> str:
        return '"]"'

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        head = lark_string(f'{{"name": {json.dumps(tool.name)}, "arguments": ')
        return f'{head} {args_rule} "}}"'
