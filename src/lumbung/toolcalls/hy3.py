"""Tencent Hunyuan 3 (Hy3): GLM-like key/value elements, each marker tagged ``:opensource``, calls
wrapped in one ``<tool_calls:opensource>`` block::

    <tool_calls:opensource>
    <tool_call:opensource>get_weather<tool_sep:opensource>
    <arg_key:opensource>city</arg_key:opensource>
    <arg_value:opensource>Jakarta</arg_value:opensource>
    </tool_call:opensource>
    </tool_calls:opensource>

Reasoning is ``<think:opensource>...</think:opensource>``. Values are raw, typed by the schema.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, lark_string
from lumbung.toolcalls.reasoning import Splitter, ThinkSplitter
from lumbung.toolcalls.xml import XmlFormat
from lumbung.types import Tool


def _tag(name: str) -> str:
    return f"<{name}:opensource>"


CALL, CALL_END, SEP = _tag("tool_call"), _tag("/tool_call"), _tag("tool_sep")
KEY, KEY_END, VALUE, VALUE_END = _tag("arg_key"), _tag("/arg_key"), _tag("arg_value"), _tag("/arg_value")
THINK, THINK_END = _tag("think"), _tag("/think")


class Hy3Format(XmlFormat):
    name = "hy3"
    starts = (CALL,)
    end = CALL_END
    ignore = (_tag("tool_calls"), _tag("/tool_calls"))
    call_open = re.compile(rf"\s*(?P<name>[^<\s]+)\s*{re.escape(SEP)}\s*")
    param = re.compile(
        rf"\s*{re.escape(KEY)}(?P<key>[^<]*){re.escape(KEY_END)}\s*{re.escape(VALUE)}(?P<value>.*?){re.escape(VALUE_END)}",
        re.S,
    )

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        params = "".join(
            f"{KEY}{k}{KEY_END}\n{VALUE}{v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}{VALUE_END}\n"
            for k, v in arguments.items()
        )
        return f"{_tag('tool_calls')}\n{CALL}{name}{SEP}\n{params}{CALL_END}\n{_tag('/tool_calls')}"

    def grammar_open(self, tool: Tool, lit: Literal) -> str:
        return f"{lit(CALL)} {lark_string(tool.name)} {lit(SEP)} {lark_string(chr(10))}"

    def grammar_param(self, key: str, text: bool, schema: dict[str, Any]) -> tuple[str, str]:
        return f"{KEY}{key}{KEY_END}\n{VALUE}", f"{VALUE_END}\n"

    def grammar_close(self, lit: Literal) -> str:
        return lit(CALL_END)

    def splitter(self, template: str, prompt: str) -> Splitter | None:
        # The template builds its markers from a suffix: '<think{}>'.format(HYTK).
        if THINK not in template and "<think{}>" not in template:
            return super().splitter(template, prompt)
        return ThinkSplitter(inside=prompt.rstrip().endswith(THINK), opening=THINK, closing=THINK_END)
