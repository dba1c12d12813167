"""Splits reasoning from the answer, incrementally: ``<think>...</think>`` (DeepSeek R1, Qwen 3, QwQ,
Kimi, GLM) or another family's pair of markers (Gemma 4's ``<|channel>thought ... <channel|>``).

Reasoning goes to ``message.reasoning_content`` and never reaches the content or the tool-call
parser. Templates that open the block in the generation prompt (R1, Qwen 3 thinking) make the output
start inside it: ``inside=True``. Every splitter has ``feed``, ``finish`` and ``markers`` (the text it
must see, which a vocabulary may hold as special tokens that print as nothing).
"""

from __future__ import annotations

from typing import Protocol

from lumbung.toolcalls.parsed import partial_suffix

OPEN = "<think>"
CLOSE = "</think>"


class Splitter(Protocol):
    @property
    def markers(self) -> tuple[str, ...]: ...

    def feed(self, text: str) -> tuple[str, str]: ...

    def finish(self) -> tuple[str, str]: ...


class ThinkSplitter:
    def __init__(self, *, inside: bool = False, opening: str = OPEN, closing: str = CLOSE) -> None:
        self.open, self.close = opening, closing
        self.markers = (opening, closing)
        self.inside = inside
        self.seen_text = False  # a <think> is only honoured before any answer text
        self.closed = False
        self.buf = ""

    def feed(self, text: str) -> tuple[str, str]:
        """Return (reasoning, answer text) ready to emit."""
        self.buf += text
        reasoning, answer = "", ""
        while True:
            if self.inside:
                i = self.buf.find(self.close)
                if i == -1:
                    keep = partial_suffix(self.buf, (self.close,))
                    reasoning += self.buf[: len(self.buf) - keep]
                    self.buf = self.buf[len(self.buf) - keep :]
                    return reasoning, answer
                reasoning += self.buf[:i]
                self.buf = self.buf[i + len(self.close) :]
                self.inside = False
                self.seen_text = True
                self.closed = True
                continue
            if self.closed:  # the blank lines after </think> belong to neither part
                self.buf = self.buf.lstrip()
                if not self.buf:
                    return reasoning, answer
                self.closed = False
            if self.seen_text:
                answer += self.buf
                self.buf = ""
                return reasoning, answer
            lead = self.buf.lstrip()
            if not lead or (len(lead) < len(self.open) and self.open.startswith(lead)):
                return reasoning, answer  # could still be an opening tag
            if lead.startswith(self.open):
                self.buf = lead[len(self.open) :]
                self.inside = True
                continue
            self.seen_text = True

    def finish(self) -> tuple[str, str]:
        rest, self.buf = self.buf, ""
        return (rest, "") if self.inside else ("", rest)
