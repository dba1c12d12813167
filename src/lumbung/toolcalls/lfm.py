"""Liquid LFM2.5 (8B-A1B): a Python list of calls with keyword arguments between markers::

    <|tool_call_start|>[get_weather(city='Jakarta', days=1), get_time(tz='WIB')]<|tool_call_end|>

Read with Python's own parser (``ast``, literals only: nothing is evaluated); JSON's ``true``,
``false`` and ``null`` are read too. A forced call is written ``name(**{JSON arguments})``, which
the grammar can hold to the tool's schema and which reads back the same. Calls are sent whole when
their block closes.
"""

from __future__ import annotations

import ast
import json
from typing import Any

from lumbung.toolcalls.base import Literal, ParsedCall, ToolFormat, compact, lark_string
from lumbung.toolcalls.stream import CallStreamer
from lumbung.types import Tool

OPEN, CLOSE = "<|tool_call_start|>", "<|tool_call_end|>"
_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, ast.Dict):
        return {
            _literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True) if k is not None
        }
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(e) for e in node.elts]
    return ast.literal_eval(node)


def _call(node: ast.expr) -> tuple[str, dict[str, Any]] | None:
    if not isinstance(node, ast.Call) or node.args:
        return None
    name = ast.unparse(node.func)  # a dotted name stays whole
    args: dict[str, Any] = {}
    for keyword in node.keywords:
        value = _literal(keyword.value)
        if keyword.arg is not None:
            args[keyword.arg] = value
        elif isinstance(value, dict):  # name(**{...}): the forced form
            args.update(value)
        else:
            return None
    return name, args


class LfmFormat(ToolFormat):
    name = "lfm"
    starts = (OPEN,)
    end = CLOSE
    separator = ", "

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        try:
            tree = ast.parse(body.strip(), mode="eval").body
            found = [_call(e) for e in tree.elts] if isinstance(tree, ast.List) else [_call(tree)]
        except (SyntaxError, ValueError, TypeError, RecursionError):
            return None
        calls = []
        for item in found:
            if item is None or (tools and item[0] not in tools):
                return None
            calls.append(ParsedCall(item[0], compact(item[1])))
        return calls or None

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        args = ", ".join(
            f"{k}={v!r}" if not isinstance(v, dict) else f"{k}={json.dumps(v)}" for k, v in arguments.items()
        )
        return f"{OPEN}[{name}({args})]{CLOSE}"

    def grammar_prefix(self, lit: Literal) -> str:
        return f'{lit(OPEN)} "["'

    def grammar_suffix(self, lit: Literal) -> str:
        return f'"]" {lit(CLOSE)}'

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        return f'{lark_string(tool.name + "(**")} {args_rule} ")"'

    def streamer(self, tools: dict[str, Tool]) -> CallStreamer | None:
        return None
