"""Splits ``<think>...</think>`` reasoning from the answer, incrementally (DeepSeek R1, Qwen 3, QwQ).

Reasoning goes to ``message.reasoning_content`` and never reaches the content or the tool-call
parser. Templates that open the block in the generation prompt (R1, Qwen 3 thinking) make the output
start inside it: ``inside=True``.
"""

from __future__ import annotations

from lumbung.toolcalls.base import partial_suffix

OPEN = "<think>"
CLOSE = "</think>"


class ThinkSplitter:
    def __init__(self, *, inside: bool = False) -> None:
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
                i = self.buf.find(CLOSE)
                if i == -1:
                    keep = partial_suffix(self.buf, (CLOSE,))
                    reasoning += self.buf[: len(self.buf) - keep]
                    self.buf = self.buf[len(self.buf) - keep :]
                    return reasoning, answer
                reasoning += self.buf[:i]
                self.buf = self.buf[i + len(CLOSE) :]
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
            if not lead or (len(lead) < len(OPEN) and OPEN.startswith(lead)):
                return reasoning, answer  # could still be an opening tag
            if lead.startswith(OPEN):
                self.buf = lead[len(OPEN) :]
                self.inside = True
                continue
            self.seen_text = True

    def finish(self) -> tuple[str, str]:
        rest, self.buf = self.buf, ""
        return (rest, "") if self.inside else ("", rest)
