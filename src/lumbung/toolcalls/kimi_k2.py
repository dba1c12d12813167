"""Kimi K2 (Instruct and Thinking): calls in Moonshot's special tokens, JSON arguments::

    <|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>
    {"city": "Jakarta"}<|tool_call_end|><|tool_calls_section_end|>

The call id is ``functions.NAME:INDEX``; several calls follow each other inside one section.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, ParsedCall, ToolFormat, lark_string, named_call
from lumbung.types import Tool

SECTION_BEGIN = "<|tool_calls_section_begin|>"
SECTION_END = "<|tool_calls_section_end|>"
CALL_BEGIN = "<|tool_call_begin|>"
ARGS_BEGIN = "<|tool_call_argument_begin|>"
CALL_END = "<|tool_call_end|>"
_ID = r"\s*(?:functions\.)?(?P<name>[^:<\s]+)(?::\d+)?\s*"


class KimiK2Format(ToolFormat):
    name = "kimi_k2"
    starts = (CALL_BEGIN,)
    end = CALL_END
    ignore = (SECTION_BEGIN, SECTION_END)
    stream_heads = (re.compile(_ID + re.escape(ARGS_BEGIN) + r"\s*(?=\{)"),)

    @property
    def trigger(self) -> str | None:
        return SECTION_BEGIN

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        head, sep, raw = body.partition(ARGS_BEGIN)
        found = re.fullmatch(_ID, head)
        if not sep or found is None:
            return None
        return named_call(found.group("name"), raw, tools)

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        args = json.dumps(arguments, ensure_ascii=False)
        return f"{SECTION_BEGIN}{CALL_BEGIN}functions.{name}:0{ARGS_BEGIN}{args}{CALL_END}{SECTION_END}"

    def grammar_prefix(self, lit: Literal) -> str:
        return lit(SECTION_BEGIN)

    def grammar_suffix(self, lit: Literal) -> str:
        return lit(SECTION_END)

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        head = lark_string(f"functions.{tool.name}:")
        return f"{lit(CALL_BEGIN)} {head} /[0-9]/ {lit(ARGS_BEGIN)} {args_rule} {lit(CALL_END)}"
