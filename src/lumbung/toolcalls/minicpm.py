"""OpenBMB MiniCPM5: each call an XML element, values raw (text with ``<``, ``&`` or a newline in
a CDATA section)::

    <function name="get_weather"><param name="city">Jakarta</param></function>

Values are typed by the tool's schema. Its template places a turn's calls where the content holds
``<tool_sep>`` markers, and after the content when it holds none.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, lark_string
from lumbung.toolcalls.xml import XmlFormat, schema_value
from lumbung.types import Tool

OPEN, CLOSE = '<function name="', "</function>"
_CDATA = re.compile(r"^<!\[CDATA\[(.*)\]\]>$", re.S)


class MiniCpmFormat(XmlFormat):
    name = "minicpm"
    starts = (OPEN,)
    end = CLOSE
    ignore = ("<tool_sep>",)
    separator = ""
    call_open = re.compile(r'(?P<name>[^"<>]+)">')
    param = re.compile(r'\s*<param name="(?P<key>[^"]*)">(?P<value>.*?)</param>', re.S)

    def value(self, match: re.Match[str], schema: dict[str, Any]) -> Any:
        raw = match.group("value")
        cdata = _CDATA.match(raw)
        return cdata.group(1) if cdata else schema_value(raw, schema)

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        def raw(value: Any) -> str:
            if not isinstance(value, str):
                return json.dumps(value, ensure_ascii=False)
            return f"<![CDATA[{value}]]>" if any(c in value for c in "<&\n") else value

        params = "".join(f'<param name="{k}">{raw(v)}</param>' for k, v in arguments.items())
        return f'{OPEN}{name}">{params}{CLOSE}'

    def grammar_open(self, tool: Tool, lit: Literal) -> str:
        return lark_string(f'{OPEN}{tool.name}">')

    def grammar_param(self, key: str, text: bool, schema: dict[str, Any]) -> tuple[str, str]:
        return f'<param name="{key}">', "</param>"

    def grammar_close(self, lit: Literal) -> str:
        return lark_string(CLOSE)
