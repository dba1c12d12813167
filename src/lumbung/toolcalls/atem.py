"""Muse Glimmer ("ATEM"): an answer in messages, each opened by a header naming its recipient, and
calls as XML invocations in the ``atem:`` namespace::

    <|start|>assistant to=self<|message|>reasoning<|eom|>
    <|start|>assistant to=get_weather<|message|><atem:function_calls>
    <atem:invoke name="get_weather">
    <atem:parameter name="city">Jakarta</atem:parameter>
    </atem:invoke>
    </atem:function_calls><|eom|>

The generation prompt ends with ``<|start|>assistant``, so the answer begins with a header. Messages
to ``self`` are reasoning; the others' bodies are the answer (text, or a call block). Values are raw,
lists and objects as JSON, typed by the tool's schema.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, lark_string
from lumbung.toolcalls.parsed import partial_suffix
from lumbung.toolcalls.reasoning import Splitter
from lumbung.toolcalls.xml import XmlFormat
from lumbung.types import Tool

BLOCK, BLOCK_END = "<atem:function_calls>", "</atem:function_calls>"
INVOKE, INVOKE_END = '<atem:invoke name="', "</atem:invoke>"
MESSAGE, START = "<|message|>", "<|start|>assistant"
ENDS = ("<|eom|>", "<|eot|>", START)


class AtemSplitter:
    """Reasoning (messages to ``self``) from the answer (every other message's body), headers and
    message ends dropped."""

    markers = (MESSAGE, START, *ENDS[:2])

    def __init__(self) -> None:
        self.buf = ""
        self.mode = "header"  # header, reasoning or answer

    def feed(self, text: str) -> tuple[str, str]:
        self.buf += text
        reasoning, answer = "", ""
        while self.buf:
            if self.mode == "header":
                i = self.buf.find(MESSAGE)
                if i == -1:
                    lead = self.buf.lstrip()
                    headed = any(lead.startswith(m) or m.startswith(lead) for m in ("to=", MESSAGE))
                    if lead and not headed:
                        self.mode = "answer"  # text with no header: an answer all the same
                        continue
                    return reasoning, answer
                header = self.buf[:i].strip()
                self.mode = "reasoning" if header == "to=self" else "answer"
                self.buf = self.buf[i + len(MESSAGE) :]
                continue
            found = [(j, end) for end in ENDS if (j := self.buf.find(end)) != -1]
            if not found:
                keep = partial_suffix(self.buf, ENDS)
                body, self.buf = self.buf[: len(self.buf) - keep], self.buf[len(self.buf) - keep :]
            else:
                j, end = min(found)
                body, self.buf = self.buf[:j], self.buf[j + len(end) :]
            if self.mode == "reasoning":
                reasoning += body
            else:
                answer += body
            if not found:
                return reasoning, answer
            self.mode = "header"
        return reasoning, answer

    def finish(self) -> tuple[str, str]:
        rest, self.buf = self.buf, ""
        return (rest, "") if self.mode == "reasoning" else ("", rest if self.mode == "answer" else "")


class AtemFormat(XmlFormat):
    name = "atem"
    starts = (INVOKE,)
    end = INVOKE_END
    ignore = (BLOCK, BLOCK_END)
    call_open = re.compile(r'(?P<name>[^"<>]+)">')
    param = re.compile(r'\s*<atem:parameter name="(?P<key>[^"]*)">(?P<value>.*?)</atem:parameter>', re.S)

    @property
    def trigger(self) -> str | None:
        return BLOCK

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        params = "".join(
            f'<atem:parameter name="{k}">{v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}'
            "</atem:parameter>\n"
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
        return f'<atem:parameter name="{key}">', "</atem:parameter>\n"

    def grammar_close(self, lit: Literal) -> str:
        return lark_string(INVOKE_END)

    def splitter(self, template: str, prompt: str) -> Splitter | None:
        if "to=self" not in template or not prompt.rstrip().endswith(START):
            return super().splitter(template, prompt)
        return AtemSplitter()
