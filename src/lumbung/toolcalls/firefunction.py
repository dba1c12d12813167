"""Fireworks FireFunction v2 (on Llama 3): one JSON list of calls after a ``functools`` marker, with
no closing marker (the turn ends after it)::

     functools[{"name": "get_weather", "arguments": {"city": "Jakarta"}}, ...]
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, ParsedCall, lark_string
from lumbung.toolcalls.json_list import JsonListFormat
from lumbung.toolcalls.stream import JSON_HEAD
from lumbung.types import Tool

OPEN = "functools["


class FireFunctionFormat(JsonListFormat):
    name = "firefunction"
    starts = (OPEN,)
    end = None
    stream_heads = (re.compile(r"\s*" + JSON_HEAD),)
    stream_next = (re.compile(r"\s*\}\s*,\s*" + JSON_HEAD),)

    def element(self, value: dict[str, Any]) -> tuple[str, Any] | None:
        name, args = value.get("name"), value.get("arguments", {})
        if isinstance(args, str):  # arguments as JSON text, as OpenAI's calls carry them
            try:
                args = json.loads(args)
            except ValueError:
                return None
        return (name, args) if isinstance(name, str) else None

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        return super().parse_block("[" + body.strip(), tools)  # the marker holds the list's "["

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        call = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
        return f" {OPEN}{call}]"

    def grammar_prefix(self, lit: Literal) -> str:
        return lit(OPEN)

    def grammar_suffix(self, lit: Literal) -> str:
        return '"]"'

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        head = lark_string(f'{{"name": {json.dumps(tool.name)}, "arguments": ')
        return f'{head} {args_rule} "}}"'
