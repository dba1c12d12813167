"""gpt-oss (OpenAI's harmony format): every message in channels, calls addressed to a recipient::

    <|channel|>analysis<|message|>The user wants the weather.<|end|>
    <|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Jakarta"}<|call|>

``HarmonySplitter`` reads the framing: the ``analysis`` channel is reasoning, ``final`` (and
``commentary`` with no recipient) is the answer, and a message addressed to ``functions.NAME`` is a
call, handed on to the call parser as ``to=functions.NAME<|message|>ARGS<|call|>``, which
``HarmonyFormat`` parses (its arguments stream).
"""

from __future__ import annotations

import json
import re
from typing import Any

from lumbung.toolcalls.base import Literal, ParsedCall, ToolFormat, lark_string, named_call
from lumbung.toolcalls.parsed import partial_suffix
from lumbung.toolcalls.reasoning import Splitter
from lumbung.types import Tool

START, CHANNEL, MESSAGE, CONSTRAIN = "<|start|>", "<|channel|>", "<|message|>", "<|constrain|>"
END, CALL, RETURN = "<|end|>", "<|call|>", "<|return|>"
CALL_OPEN = "to=functions."
_BODY_ENDS = (END, CALL, RETURN, START)
_RECIPIENT = re.compile(r"to=(\S+?)(?=\s|<\||$)")
_CHANNEL = re.compile(re.escape(CHANNEL) + r"\s*(\w+)")
_HEADER_MAX = 512  # a header longer than this is no header: the model writes plain text


class HarmonySplitter:
    markers = (START, CHANNEL, MESSAGE, CONSTRAIN, END, CALL, RETURN)

    def __init__(self) -> None:
        self.buf = ""
        self.in_header = True
        self.kind = "text"  # of the message being read: "reasoning", "text" or "call"

    def _header(self, header: str) -> None:
        recipient = _RECIPIENT.search(header)
        channel = _CHANNEL.search(header)
        if recipient and recipient.group(1).startswith("functions."):
            self.kind = "call"
        elif channel and channel.group(1) == "analysis":
            self.kind = "reasoning"
        else:
            self.kind = "text"

    def _emit(self, text: str, out: list[str]) -> None:
        out[0 if self.kind == "reasoning" else 1] += text

    def feed(self, text: str) -> tuple[str, str]:
        self.buf += text
        out = ["", ""]
        while self.buf:
            if self.in_header:
                lead = self.buf.lstrip()
                if not lead:
                    break
                framed = lead.startswith(("<|", "to=")) or "<|".startswith(lead) or "to=".startswith(lead)
                if not framed or len(self.buf) > _HEADER_MAX:
                    self.in_header, self.kind = False, "text"  # plain text, no framing
                    continue
                i = self.buf.find(MESSAGE)
                if i == -1:
                    break
                header, self.buf = self.buf[:i], self.buf[i + len(MESSAGE) :]
                self._header(header)
                self.in_header = False
                if self.kind == "call":
                    out[1] += CALL_OPEN + _RECIPIENT.search(header).group(1)[len("functions.") :] + MESSAGE  # type: ignore[union-attr]
                continue
            found = [(i, m) for m in _BODY_ENDS if (i := self.buf.find(m)) != -1]
            if not found:
                keep = partial_suffix(self.buf, _BODY_ENDS)
                self._emit(self.buf[: len(self.buf) - keep], out)
                self.buf = self.buf[len(self.buf) - keep :]
                break
            i, marker = min(found)
            self._emit(self.buf[:i], out)
            if self.kind == "call":
                out[1] += CALL
            # A message's end marker is consumed; a header's opening belongs to the next header.
            self.buf = self.buf[i + len(marker) :] if marker in (END, CALL, RETURN) else self.buf[i:]
            self.in_header = True
        return out[0], out[1]

    def finish(self) -> tuple[str, str]:
        rest, self.buf = self.buf, ""
        if self.in_header:
            return ("", "") if "<|" in rest else ("", rest)
        return (rest, "") if self.kind == "reasoning" else ("", rest)


class HarmonyFormat(ToolFormat):
    name = "harmony"
    starts = (CALL_OPEN,)
    end = CALL
    separator = START + "assistant"
    stream_heads = (re.compile(r"(?P<name>[^<\s]+)" + re.escape(MESSAGE) + r"\s*(?=\{)"),)

    @property
    def trigger(self) -> str | None:
        return None  # the framing opens reasoning and answers too: calls are parsed, not constrained lazily

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        name, sep, raw = body.partition(MESSAGE)
        return named_call(name, raw, tools) if sep else None

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        # The call as the splitter hands it on (the recipient without its channel framing), which a
        # model taught by this example may write too: the splitter reads both.
        return f"{CALL_OPEN}{name}{MESSAGE}{json.dumps(arguments, ensure_ascii=False)}{CALL}"

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        head = lark_string(f"commentary to=functions.{tool.name} ")
        return f'{lit(CHANNEL)} {head} {lit(CONSTRAIN)} "json" {lit(MESSAGE)} {args_rule} {lit(CALL)}'

    def splitter(self, template: str, prompt: str) -> Splitter | None:
        return HarmonySplitter()
