"""GLM 4.5 / 4.6 / 4.7: one ``<tool_call>`` block per call, the name then key/value elements::

    <tool_call>get_weather
    <arg_key>city</arg_key>
    <arg_value>Jakarta</arg_value>
    </tool_call>

Values are written raw (strings as text, anything else as JSON) and typed by the tool's schema.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, lark_string
from lumbung.toolcalls.xml import XmlFormat
from lumbung.types import Tool


class GlmFormat(XmlFormat):
    name = "glm"
    starts = ("<tool_call>",)
    end = "</tool_call>"
    call_open = re.compile(r"\s*(?P<name>[^<\s]+)\s*(?=<arg_key>)")
    call_open_whole = re.compile(r"\s*(?P<name>[^<\s]+)\s*")
    param = re.compile(r"\s*<arg_key>(?P<key>[^<]*)</arg_key>\s*<arg_value>(?P<value>.*?)</arg_value>", re.S)

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        params = "".join(
            f"<arg_key>{k}</arg_key>\n<arg_value>{v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
            "</arg_value>\n"
            for k, v in arguments.items()
        )
        return f"<tool_call>{name}\n{params}</tool_call>"

    def grammar_open(self, tool: Tool, lit: Literal) -> str:
        return f"{lit('<tool_call>')} {lark_string(tool.name + chr(10))}"

    def grammar_param(self, key: str, text: bool, schema: dict[str, Any]) -> tuple[str, str]:
        return f"<arg_key>{key}</arg_key>\n<arg_value>", "</arg_value>\n"

    def grammar_close(self, lit: Literal) -> str:
        return lit("</tool_call>")
