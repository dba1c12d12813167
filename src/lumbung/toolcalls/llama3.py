"""Llama 3.1 / 3.2 / 3.3 JSON tool calls: the answer is ``{"name": ..., "parameters": {...}}``.

Meta's templates describe the tools themselves; a call is a bare JSON object at the very start of
the answer (or after ``<|python_tag|>``), several separated by ``;`` or newlines.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import (
    CallParser,
    Literal,
    Parsed,
    ParsedCall,
    ToolFormat,
    call_from_json,
    json_values,
    lark_string,
)
from lumbung.toolcalls.stream import JSON_HEAD
from lumbung.types import Tool


class Llama3Format(ToolFormat):
    name = "llama3"
    starts = ("<|python_tag|>",)
    end = None
    stream_heads = (re.compile(r"\s*" + JSON_HEAD),)
    stream_next = (re.compile(r"\s*\}[\s,;]*" + JSON_HEAD),)

    @property
    def trigger(self) -> str | None:
        return None  # a bare JSON object cannot be told from text early

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        values = json_values(body)
        if not values:
            return None
        calls = [call_from_json(v, tools, ("parameters", "arguments")) for v in values]
        return None if any(c is None for c in calls) else [c for c in calls if c]

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        return json.dumps({"name": name, "parameters": arguments}, ensure_ascii=False)

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        head = lark_string(f'{{"name": {json.dumps(tool.name)}, "parameters": ')
        return f'{head} {args_rule} "}}"'

    def parser(self, tools: list[Tool]) -> CallParser:
        return _Llama3Parser(self, tools)


class _Llama3Parser(CallParser):
    """A JSON object opening the answer is a call block too (Llama writes no marker before it)."""

    fresh = True

    def feed(self, text: str) -> Parsed:
        if self.fresh:
            self.buf += text
            lead = self.buf.lstrip()
            if not lead:
                return Parsed()
            self.fresh = False
            if lead.startswith("{"):
                self._open("")
                self.buf = lead
                return super().feed("")
            text, self.buf = self.buf, ""
        return super().feed(text)

    def finish(self, truncated: bool = False) -> Parsed:
        self.fresh = False
        return super().finish(truncated)
