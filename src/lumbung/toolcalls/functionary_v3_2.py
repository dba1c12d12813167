"""MeetKai Functionary v3.2: every message of the answer opens with ``>>>RECIPIENT`` and a newline;
``all`` is the user (text), any other recipient a function, whose JSON arguments follow::

    >>>all
    Let me look.>>>get_weather
    {"city": "Jakarta"}

The generation prompt ends with ``>>>``, so the answer starts with the first recipient.
``RecipientSplitter`` turns the answer into what the parser reads: text for ``all``, ``>>>NAME`` and
the arguments for a call.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, ParsedCall, ToolFormat, call_from_json, lark_string
from lumbung.toolcalls.parsed import partial_suffix
from lumbung.toolcalls.reasoning import Splitter
from lumbung.types import Tool

OPEN = ">>>"
TEXT = "all"


class RecipientSplitter:
    """No reasoning here: drops the ``>>>all`` headers and gives the calls their ``>>>`` back."""

    markers = (OPEN,)

    def __init__(self, *, at_recipient: bool) -> None:
        self.buf = ""
        self.at_recipient = at_recipient  # the prompt ended with ">>>"

    def feed(self, text: str) -> tuple[str, str]:
        self.buf += text
        out = ""
        while self.buf:
            if self.at_recipient:
                line, found, rest = self.buf.partition("\n")
                if not found:
                    return "", out
                self.at_recipient = False
                self.buf = rest
                if line.strip() != TEXT:
                    out += f"{OPEN}{line.strip()}\n"
                continue
            i = self.buf.find(OPEN)
            if i == -1:
                keep = partial_suffix(self.buf, (OPEN,))
                out += self.buf[: len(self.buf) - keep]
                self.buf = self.buf[len(self.buf) - keep :]
                return "", out
            out += self.buf[:i]
            self.buf = self.buf[i + len(OPEN) :]
            self.at_recipient = True
        return "", out

    def finish(self) -> tuple[str, str]:
        rest, self.buf = self.buf, ""
        if self.at_recipient and rest.strip() and rest.strip() != TEXT:
            return "", f"{OPEN}{rest}"
        return "", "" if self.at_recipient else rest


class FunctionaryV32Format(ToolFormat):
    name = "functionary_v3_2"
    starts = (OPEN,)
    end = None
    separator = ""
    stream_heads = (re.compile(r"(?P<name>[^\n>]+)\n\s*(?=\{)"),)

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        name, found, args = body.partition("\n")
        if not found:
            return None
        call = call_from_json({"name": name.strip(), "arguments": args.strip()}, tools, ("arguments",))
        return None if call is None else [call]

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        return f"{OPEN}{name}\n{json.dumps(arguments, ensure_ascii=False)}"

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        return f"{lark_string(OPEN + tool.name + chr(10))} {args_rule}"

    def splitter(self, template: str, prompt: str) -> Splitter | None:
        if not prompt.endswith(OPEN):  # not the template's prompt: calls still parse from ">>>NAME"
            return super().splitter(template, prompt)
        return RecipientSplitter(at_recipient=True)
