"""Kimi K3: every part of a message in ``<|open|>TAG attrs<|sep|> ... <|close|>TAG<|sep|>`` framing::

    <|open|>think<|sep|>The user wants the weather.<|close|>think<|sep|>
    <|open|>response<|sep|><|close|>response<|sep|>
    <|open|>tools<|sep|><|open|>call tool="get_weather" index="1"<|sep|>
    <|open|>argument key="city" type="string"<|sep|>Jakarta<|close|>argument<|sep|><|close|>call<|sep|>
    <|close|>tools<|sep|>

``KimiK3Splitter`` reads the framing (``think`` is reasoning, ``response`` the answer, ``tools`` goes
on to the call parser as it is); ``KimiK3Format`` parses each ``call``, values typed by their
``type`` attribute, a parameter at a time.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, lark_string
from lumbung.toolcalls.parsed import partial_suffix
from lumbung.toolcalls.reasoning import Splitter
from lumbung.toolcalls.xml import XmlFormat, typed_value
from lumbung.types import Tool

OPEN, CLOSE, SEP, END_MSG = "<|open|>", "<|close|>", "<|sep|>", "<|end_of_msg|>"
CALL, CALL_END = f'{OPEN}call tool="', f"{CLOSE}call{SEP}"
TOOLS, TOOLS_END = f"{OPEN}tools{SEP}", f"{CLOSE}tools{SEP}"
_SECTIONS = ("think", "response", "tools")
_TYPES = {"string": "string", "integer": "number", "number": "number", "boolean": "boolean", "array": "array"}


class KimiK3Splitter:
    markers = (OPEN, CLOSE, SEP, END_MSG)

    def __init__(self, section: str | None = None) -> None:
        self.section = section  # the open section: "think", "response", "tools", or None between them
        self.buf = ""

    def _emit(self, text: str, out: list[str]) -> None:
        out[0 if self.section == "think" else 1] += text

    def feed(self, text: str) -> tuple[str, str]:
        self.buf += text
        out = ["", ""]
        while self.buf:
            if self.section is not None:
                closer = f"{CLOSE}{self.section}{SEP}"
                i = self.buf.find(closer)
                if i == -1:
                    keep = partial_suffix(self.buf, (closer,))
                    self._emit(self.buf[: len(self.buf) - keep], out)
                    self.buf = self.buf[len(self.buf) - keep :]
                    break
                self._emit(self.buf[:i] + (closer if self.section == "tools" else ""), out)
                self.buf, self.section = self.buf[i + len(closer) :], None
                continue
            found = [(i, m) for m in (OPEN, CLOSE, END_MSG) if (i := self.buf.find(m)) != -1]
            if not found:  # text outside any section (a model that writes no framing)
                keep = partial_suffix(self.buf, (OPEN, CLOSE, END_MSG))
                out[1] += self.buf[: len(self.buf) - keep]
                self.buf = self.buf[len(self.buf) - keep :]
                break
            i, marker = min(found)
            out[1] += self.buf[:i]
            if marker == END_MSG:
                self.buf = self.buf[i + len(END_MSG) :]
                continue
            j = self.buf.find(SEP, i)
            if j == -1:
                self.buf = self.buf[i:]
                break
            tag, self.buf = self.buf[i : j + len(SEP)], self.buf[j + len(SEP) :]
            name = tag[len(marker) : -len(SEP)].split(" ", 1)[0]
            if marker == OPEN and name in _SECTIONS:
                self.section = name
                if name == "tools":
                    out[1] += tag
        return out[0], out[1]

    def finish(self) -> tuple[str, str]:
        rest, self.buf = self.buf, ""
        return (rest, "") if self.section == "think" else ("", rest)


class KimiK3Format(XmlFormat):
    name = "kimi_k3"
    starts = (CALL,)
    end = CALL_END
    ignore = (TOOLS, TOOLS_END)
    call_open = re.compile(r'(?P<name>[^"]+)"(?: index="[^"]*")?' + re.escape(SEP))
    param = re.compile(
        re.escape(OPEN)
        + r'argument key="(?P<key>[^"]*)" type="(?P<type>[^"]*)"'
        + re.escape(SEP)
        + r"(?P<value>.*?)"
        + re.escape(f"{CLOSE}argument{SEP}"),
        re.S,
    )

    @property
    def trigger(self) -> str | None:
        return TOOLS

    def value(self, match: re.Match[str], schema: dict[str, Any]) -> Any:
        return typed_value(match.group("value"), match.group("type") == "string")

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        params = "".join(
            f'{OPEN}argument key="{html.escape(k)}" type="{_value_type(v)}"{SEP}'
            f"{v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}{CLOSE}argument{SEP}"
            for k, v in arguments.items()
        )
        return f'{TOOLS}{CALL}{html.escape(name)}" index="1"{SEP}{params}{CALL_END}{TOOLS_END}'

    def grammar(self, tools: list[Tool], *, max_calls: int, lit: Literal, json_rule: Any) -> str:
        opening, closing = lark_string(TOOLS), lark_string(TOOLS_END)
        return self.grammar_in_block(
            tools, opening, closing, max_calls=max_calls, lit=lit, json_rule=json_rule
        )

    def grammar_open(self, tool: Tool, lit: Literal) -> str:
        return lark_string(f'{CALL}{tool.name}" index="1"{SEP}')

    def grammar_param(self, key: str, text: bool, schema: dict[str, Any]) -> tuple[str, str]:
        kind = _TYPES.get(str(schema.get("type")), "object")
        return f'{OPEN}argument key="{key}" type="{kind}"{SEP}', f"{CLOSE}argument{SEP}"

    def grammar_close(self, lit: Literal) -> str:
        return lark_string(CALL_END)

    def splitter(self, template: str, prompt: str) -> Splitter | None:
        tail = prompt.rstrip()
        inside = next((s for s in ("think", "response") if tail.endswith(f"{OPEN}{s}{SEP}")), None)
        return KimiK3Splitter(inside)


def _value_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"
