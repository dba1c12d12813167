"""Gemma 4: a call in Gemma's own tokens, arguments in its JSON-like notation::

    <|tool_call>call:get_weather{city:<|"|>Jakarta<|"|>,days:3}<tool_call|>

Keys are bare, strings are quoted by the ``<|"|>`` token; numbers, booleans, arrays and objects are
as in JSON. A forced call is constrained as plain JSON inside the same markers, which this parser
reads too. Calls are sent whole when their block closes. Reasoning is Gemma 4's thought channel,
``<|channel>thought ... <channel|>``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, ParsedCall, ToolFormat, compact, lark_string
from lumbung.toolcalls.reasoning import Splitter, ThinkSplitter
from lumbung.types import Tool

OPEN = "<|tool_call>"
CLOSE = "<tool_call|>"
QUOTE = '<|"|>'
THOUGHT_OPEN = "<|channel>thought"
THOUGHT_CLOSE = "<channel|>"
_CALL = re.compile(r"\s*call:(?P<name>[^{\s]+)\s*(?P<args>\{.*\})\s*", re.S)
_TOKEN = re.compile(
    r'<\|"\|>(?P<quoted>.*?)<\|"\|>|(?P<json>"(?:[^"\\]|\\.)*")|(?P<key>[A-Za-z_][\w.-]*)(?=\s*:)'
    r"|(?P<word>None|True|False)\b|(?P<other>[^<\"A-Za-z_]+|[A-Za-z_]\w*)",
    re.S,
)
_WORDS = {"None": "null", "True": "true", "False": "false"}


def to_json(text: str) -> str:
    """Gemma 4's argument notation as JSON text (JSON itself passes through)."""
    out, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"not Gemma 4 argument notation at {pos}")
        if match.group("quoted") is not None:
            out.append(json.dumps(match.group("quoted"), ensure_ascii=False))
        elif match.group("key") is not None:
            out.append(json.dumps(match.group("key")))
        elif match.group("word") is not None:
            out.append(_WORDS[match.group("word")])
        else:
            out.append(match.group(0))
        pos = match.end()
    return "".join(out)


def _notation(value: Any) -> str:
    if isinstance(value, str):
        return QUOTE + value + QUOTE
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_notation(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_notation(v) for v in value) + "]"
    return json.dumps(value)


class Gemma4Format(ToolFormat):
    name = "gemma4"
    starts = (OPEN,)
    end = CLOSE
    separator = ""

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        match = _CALL.fullmatch(body)
        if match is None or (tools and match.group("name") not in tools):
            return None
        try:
            args = json.loads(to_json(match.group("args")))
        except ValueError:
            return None
        return [ParsedCall(match.group("name"), compact(args))] if isinstance(args, dict) else None

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        return f"{OPEN}call:{name}{_notation(arguments)}{CLOSE}"

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        return f"{lit(OPEN)} {lark_string('call:' + tool.name)} {args_rule} {lit(CLOSE)}"

    def splitter(self, template: str, prompt: str) -> Splitter | None:
        if "<|channel>" not in template:
            return super().splitter(template, prompt)
        inside = prompt.rstrip().endswith(THOUGHT_OPEN)
        return ThinkSplitter(inside=inside, opening=THOUGHT_OPEN, closing=THOUGHT_CLOSE)
