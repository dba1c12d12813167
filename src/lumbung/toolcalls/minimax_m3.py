"""MiniMax M3: XML invocations whose every tag carries the ``]<]minimax[>[`` prefix; each argument is
an element named by its key, objects nest as elements and lists as ``<item>`` elements::

    ]<]minimax[>[<tool_call>
    ]<]minimax[>[<invoke name="get_weather">]<]minimax[>[<city>Jakarta]<]minimax[>[</city>]<]minimax[>[</invoke>
    ]<]minimax[>[</tool_call>

Leaves are typed by the tool's schema (strings stay text, anything else is read as JSON), so a forced
call may write an object or list argument as JSON text. Reasoning is ``<mm:think>...</mm:think>``.
Calls are sent whole when their invocation closes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, ParsedCall, compact, lark_string
from lumbung.toolcalls.reasoning import Splitter, ThinkSplitter
from lumbung.toolcalls.stream import CallStreamer
from lumbung.toolcalls.xml import XmlFormat, schema_value
from lumbung.types import Tool

NS = "]<]minimax[>["
BLOCK, BLOCK_END = f"{NS}<tool_call>", f"{NS}</tool_call>"
INVOKE, INVOKE_END = f'{NS}<invoke name="', f"{NS}</invoke>"
THINK, THINK_END = "<mm:think>", "</mm:think>"
_OPEN = re.compile(r"\s*<([^<>/\s]+)>")
Node = str | list[tuple[str, "Node"]]


def _elements(text: str) -> list[tuple[str, Node]] | None:
    """``<k>...</k>`` elements one after another (nested ones as lists), or None when malformed."""
    out: list[tuple[str, Node]] = []
    pos = 0
    while text[pos:].strip():
        opened = _OPEN.match(text, pos)
        if opened is None:
            return None
        tag = opened.group(1)
        start, depth, i = opened.end(), 1, opened.end()
        while depth:
            o, c = text.find(f"<{tag}>", i), text.find(f"</{tag}>", i)
            if c == -1:
                return None
            if o != -1 and o < c:
                depth, i = depth + 1, o + len(tag) + 2
            else:
                depth, i = depth - 1, c + len(tag) + 3
        inner = text[start : i - len(tag) - 3]
        nested = _elements(inner) if _OPEN.match(inner) else None
        out.append((tag, nested if nested else inner))
        pos = i
    return out


def _value(node: Node, schema: dict[str, Any]) -> Any:
    if isinstance(node, str):
        return schema_value(node, schema)
    if all(tag == "item" for tag, _ in node) and schema.get("type") != "object":
        items = schema.get("items")
        return [_value(child, items if isinstance(items, dict) else {}) for _, child in node]
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    return {tag: _value(child, props.get(tag, {})) for tag, child in node}


class MiniMaxM3Format(XmlFormat):
    name = "minimax_m3"
    starts = (INVOKE,)
    end = INVOKE_END
    ignore = (BLOCK, BLOCK_END)
    call_open = re.compile(r'(?P<name>[^"<>]+)">')
    param = re.compile(r"(?!)")  # unused: arguments nest, parse_block reads them

    @property
    def trigger(self) -> str | None:
        return BLOCK

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        plain = body.replace(NS, "")
        opened = self.call_open.match(plain)
        if opened is None:
            return None
        name = opened.group("name").strip()
        props = self._props(name, tools)
        elements = _elements(plain[opened.end() :])
        if props is None or elements is None:
            return None
        args = {tag: _value(node, props.get(tag, {})) for tag, node in elements}
        return [ParsedCall(name, compact(args))]

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        def xml(value: Any) -> str:
            if isinstance(value, dict):
                return "".join(f"{NS}<{k}>{xml(v)}{NS}</{k}>" for k, v in value.items() if v is not None)
            if isinstance(value, list):
                return "".join(f"{NS}<item>{xml(v)}{NS}</item>" for v in value)
            return value if isinstance(value, str) else json.dumps(value)

        return f'{BLOCK}\n{INVOKE}{name}">{xml(arguments)}{INVOKE_END}\n{BLOCK_END}'

    def grammar(self, tools: list[Tool], *, max_calls: int, lit: Literal, json_rule: Any) -> str:
        opening = f"{lit(BLOCK)} {lark_string(chr(10))}"
        closing = f"{lark_string(chr(10))} {lit(BLOCK_END)}"
        return self.grammar_in_block(
            tools, opening, closing, max_calls=max_calls, lit=lit, json_rule=json_rule
        )

    def grammar_open(self, tool: Tool, lit: Literal) -> str:
        return lark_string(f'{INVOKE}{tool.name}">')

    def grammar_param(self, key: str, text: bool, schema: dict[str, Any]) -> tuple[str, str]:
        return f"{NS}<{key}>", f"{NS}</{key}>"

    def grammar_close(self, lit: Literal) -> str:
        return lark_string(INVOKE_END)

    def streamer(self, tools: dict[str, Tool]) -> CallStreamer | None:
        return None

    def splitter(self, template: str, prompt: str) -> Splitter | None:
        if THINK not in template:
            return super().splitter(template, prompt)
        return ThinkSplitter(inside=prompt.rstrip().endswith(THINK), opening=THINK, closing=THINK_END)
