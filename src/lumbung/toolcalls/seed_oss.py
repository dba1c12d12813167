"""ByteDance Seed-OSS: Qwen3-Coder-like calls in Seed's own block, values raw::

    <seed:tool_call>
    <function=get_weather>
    <parameter=city>Jakarta</parameter>
    </function>
    </seed:tool_call>

Reasoning is ``<seed:think>...</seed:think>``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, lark_string
from lumbung.toolcalls.reasoning import Splitter, ThinkSplitter
from lumbung.toolcalls.xml import XmlFormat
from lumbung.types import Tool

OPEN, CLOSE = "<seed:tool_call>", "</seed:tool_call>"
THINK, THINK_END = "<seed:think>", "</seed:think>"


class SeedOssFormat(XmlFormat):
    name = "seed_oss"
    starts = (OPEN,)
    end = CLOSE
    call_open = re.compile(r"\s*<function=(?P<name>[^>\n]+)>")
    param = re.compile(r"\s*<parameter=(?P<key>[^>\n]+)>(?P<value>.*?)</parameter>", re.S)
    call_close = re.compile(r"\s*</function>")

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        params = "".join(
            f"<parameter={k}>{v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}</parameter>\n"
            for k, v in arguments.items()
        )
        return f"{OPEN}\n<function={name}>\n{params}</function>\n{CLOSE}"

    def grammar_open(self, tool: Tool, lit: Literal) -> str:
        return f"{lit(OPEN)} {lark_string(f'{chr(10)}<function={tool.name}>{chr(10)}')}"

    def grammar_param(self, key: str, text: bool, schema: dict[str, Any]) -> tuple[str, str]:
        return f"<parameter={key}>", "</parameter>\n"

    def grammar_close(self, lit: Literal) -> str:
        return f"{lark_string('</function>' + chr(10))} {lit(CLOSE)}"

    def splitter(self, template: str, prompt: str) -> Splitter | None:
        if THINK not in template:
            return super().splitter(template, prompt)
        return ThinkSplitter(inside=prompt.rstrip().endswith(THINK), opening=THINK, closing=THINK_END)
