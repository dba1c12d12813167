# ruff: noqa: RUF001, RUF002  (DeepSeek's markers use fullwidth bars on purpose)
"""DeepSeek V3.2 and V4: calls in DeepSeek's DSML markup, each parameter saying whether it is text::

    <｜DSML｜function_calls>
    <｜DSML｜invoke name="get_weather">
    <｜DSML｜parameter name="city" string="true">Jakarta</｜DSML｜parameter>
    <｜DSML｜parameter name="days" string="false">3</｜DSML｜parameter>
    </｜DSML｜invoke>
    </｜DSML｜function_calls>

V4 names the wrapper ``tool_calls``; everything inside is the same.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from lumbung.toolcalls.base import Literal, lark_string
from lumbung.toolcalls.xml import XmlFormat, typed_value
from lumbung.types import Tool

DSML = "｜DSML｜"
INVOKE = f'<{DSML}invoke name="'
INVOKE_END = f"</{DSML}invoke>"
PARAM_END = f"</{DSML}parameter>"


class DsmlFormat(XmlFormat):
    wrapper: ClassVar[str]
    end = INVOKE_END
    starts = (INVOKE,)
    call_open = re.compile(r'(?P<name>[^"<>]+)">')
    param = re.compile(
        rf'\s*<{DSML}parameter name="(?P<key>[^"]*)" string="(?P<string>true|false)">(?P<value>.*?){PARAM_END}',
        re.S,
    )

    @property
    def trigger(self) -> str | None:
        return f"<{DSML}{self.wrapper}>"

    def value(self, match: re.Match[str], schema: dict[str, Any]) -> Any:
        return typed_value(match.group("value"), match.group("string") == "true")

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        params = "".join(
            f'<{DSML}parameter name="{k}" string="{"true" if isinstance(v, str) else "false"}">'
            f"{v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}{PARAM_END}\n"
            for k, v in arguments.items()
        )
        return f'<{DSML}{self.wrapper}>\n{INVOKE}{name}">\n{params}{INVOKE_END}\n</{DSML}{self.wrapper}>'

    def grammar(self, tools: list[Tool], *, max_calls: int, lit: Literal, json_rule: Any) -> str:
        opening = lark_string(f"<{DSML}{self.wrapper}>\n")
        closing = lark_string(f"\n</{DSML}{self.wrapper}>")
        return self.grammar_in_block(
            tools, opening, closing, max_calls=max_calls, lit=lit, json_rule=json_rule
        )

    def grammar_open(self, tool: Tool, lit: Literal) -> str:
        return lark_string(f'{INVOKE}{tool.name}">\n')

    def grammar_param(self, key: str, text: bool, schema: dict[str, Any]) -> tuple[str, str]:
        return f'<{DSML}parameter name="{key}" string="{"true" if text else "false"}">', PARAM_END + "\n"

    def grammar_close(self, lit: Literal) -> str:
        return lark_string(INVOKE_END)


class DeepSeekV32Format(DsmlFormat):
    name = "deepseek_v3_2"
    wrapper = "function_calls"
    ignore = (f"<{DSML}function_calls>", f"</{DSML}function_calls>")


class DeepSeekV4Format(DsmlFormat):
    name = "deepseek_v4"
    wrapper = "tool_calls"
    ignore = (f"<{DSML}tool_calls>", f"</{DSML}tool_calls>")
