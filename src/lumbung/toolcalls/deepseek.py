# ruff: noqa: RUF001, RUF002  (DeepSeek's markers use fullwidth bars on purpose)
"""DeepSeek V3 / R1 (and V3.1) tool calls, wrapped in DeepSeek's special tokens::

    <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME
    ```json
    {...}
    ```<｜tool▁call▁end｜><｜tool▁calls▁end｜>

V3.1 drops the ``function`` type and the fence: ``<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, ParsedCall, ToolFormat, lark_string, named_call
from lumbung.types import Tool

CALLS_BEGIN = "<｜tool▁calls▁begin｜>"
CALLS_END = "<｜tool▁calls▁end｜>"
CALL_BEGIN = "<｜tool▁call▁begin｜>"
CALL_END = "<｜tool▁call▁end｜>"
SEP = "<｜tool▁sep｜>"
_FENCED = r"\s*function\s*" + SEP + r"(?P<name>[^\n]*?)[ \t]*\n\s*(?:```(?:json)?\s*)?(?=\{)"
_BARE = r"(?P<name>[^\n<]*?)\s*" + SEP + r"\s*(?=\{)"  # V3.1


class DeepSeekFormat(ToolFormat):
    name = "deepseek"
    starts = (CALL_BEGIN,)
    end = CALL_END
    ignore = (CALLS_BEGIN, CALLS_END)
    stream_heads = (re.compile(_FENCED), re.compile(_BARE))

    @property
    def trigger(self) -> str | None:
        return CALLS_BEGIN

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        left, sep, right = body.partition(SEP)
        if not sep:
            return None
        if left.strip() == "function":
            name, _, raw = right.partition("\n")
            raw = raw.strip()
            if raw.startswith("```"):
                raw = raw.removeprefix("```json").removeprefix("```").removesuffix("```")
        else:
            name, raw = left, right
        return named_call(name, raw, tools)

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        args = json.dumps(arguments, ensure_ascii=False)
        return f"{CALLS_BEGIN}{CALL_BEGIN}function{SEP}{name}\n```json\n{args}\n```{CALL_END}{CALLS_END}"

    def grammar_prefix(self, lit: Literal) -> str:
        return lit(CALLS_BEGIN)

    def grammar_suffix(self, lit: Literal) -> str:
        return lit(CALLS_END)

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        head = lark_string(f"{tool.name}\n```json\n")
        return f'{lit(CALL_BEGIN)} "function" {lit(SEP)} {head} {args_rule} "\\n```" {lit(CALL_END)}'
