"""MiniMax M2: XML invocations inside a ``<minimax:tool_call>`` block, values raw::

    <minimax:tool_call>
    <invoke name="get_weather">
    <parameter name="city">Jakarta</parameter>
    </invoke>
    </minimax:tool_call>

Values are typed by the tool's schema (strings stay text, anything else is read as JSON).
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, lark_string
from lumbung.toolcalls.xml import XmlFormat
from lumbung.types import Tool

BLOCK, BLOCK_END = "<minimax:tool_call>", "</minimax:tool_call>"
INVOKE, INVOKE_END = '<invoke name="', "</invoke>"


class MiniMaxM2Format(XmlFormat):
    name = "minimax_m2"
    starts = (INVOKE,)
    end = INVOKE_END
    ignore = (BLOCK, BLOCK_END)
    call_open = re.compile(r'(?P<name>[^"<>]+)">')
    param = re.compile(r'\s*<parameter name="(?P<key>[^"]*)">(?P<value>.*?)</parameter>', re.S)

    @property
    def trigger(self) -> str | None:
        return BLOCK

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        params = "".join(
            f'<parameter name="{k}">{v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}</parameter>\n'
            for k, v in arguments.items()
        )
        return f'{BLOCK}\n{INVOKE}{name}">\n{params}{INVOKE_END}\n{BLOCK_END}'

    def grammar(self, tools: list[Tool], *, max_calls: int, lit: Literal, json_rule: Any) -> str:
        opening = f"{lit(BLOCK)} {lark_string(chr(10))}"
        closing = f"{lark_string(chr(10))} {lit(BLOCK_END)}"
        return self.grammar_in_block(
            tools, opening, closing, max_calls=max_calls, lit=lit, json_rule=json_rule
        )

    def grammar_open(self, tool: Tool, lit: Literal) -> str:
        return lark_string(f'{INVOKE}{tool.name}">\n')

    def grammar_param(self, key: str, text: bool, schema: dict[str, Any]) -> tuple[str, str]:
        return f'<parameter name="{key}">', "</parameter>\n"

    def grammar_close(self, lit: Literal) -> str:
        return lark_string(INVOKE_END)
