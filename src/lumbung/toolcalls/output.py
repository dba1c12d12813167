"""From raw model text to what the client sees: reasoning, answer text and tool calls.

``OutputShaper`` sits between the local engine's chunks and the surfaces: it splits
``<think>`` reasoning off, parses the family's tool calls out of the answer, gives each call an id
and an index (argument fragments carry their call's index and no id, as ``ToolCall`` says), and
reports ``finish_reason: "tool_calls"`` when an answer that stopped made calls.
"""

from __future__ import annotations

import uuid

from lumbung.errors import InvalidRequest
from lumbung.toolcalls.base import CallParser, Parsed, ParsedCall, ToolFormat
from lumbung.toolcalls.reasoning import Splitter
from lumbung.types import Chunk, Tool, ToolCall


def call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


class OutputShaper:
    def __init__(
        self,
        *,
        fmt: ToolFormat | None,
        tools: list[Tool],
        think: Splitter | None,
        forced: str | None = None,
    ) -> None:
        """``forced``: the tool a named ``tool_choice`` names, or "required"; None: the model may
        answer in text."""
        self.parser: CallParser | None = fmt.parser(tools) if fmt is not None else None
        self.think = think
        self.n_calls = 0
        self.forced = tools[0].name if forced == "required" and len(tools) == 1 else forced

    def _cut_forced(self, rest: Parsed) -> Parsed:
        """A forced answer cut by max_tokens inside its call's opening (before the name was whole):
        the family's syntax is no text. Calls already made stand; a named tool's call comes out
        incomplete (no arguments), as the finish reason says; with several tools to pick from, the
        cut one cannot be named."""
        if self.n_calls or any(c.new for c in rest.calls):
            return Parsed("", rest.calls)
        if self.forced == "required":
            raise InvalidRequest(
                "max_tokens: the answer was cut before the name of the tool call it must make was "
                "complete; raise max_tokens.",
                param="max_tokens",
            )
        assert self.forced is not None
        return Parsed("", [ParsedCall(self.forced, "")])

    def shape(self, chunk: Chunk) -> Chunk:
        reasoning, text = self.think.feed(chunk.text) if self.think else ("", chunk.text)
        final = chunk.finish_reason is not None
        if final and self.think:
            more_reasoning, more_text = self.think.finish()
            reasoning += more_reasoning
            text += more_text
        parsed = self.parser.feed(text) if self.parser else Parsed(text)
        if final and self.parser:
            truncated = chunk.finish_reason == "length"
            rest = self.parser.finish(truncated=truncated)
            if truncated and self.forced is not None and (parsed.text + rest.text).strip():
                rest = self._cut_forced(Parsed(parsed.text + rest.text, parsed.calls + rest.calls))
                parsed = Parsed()
            parsed.text += rest.text
            parsed.calls += rest.calls
        calls = []
        for call in parsed.calls:
            if call.new:
                calls.append(ToolCall(call_id(), call.name, call.arguments, self.n_calls))
                self.n_calls += 1
            else:
                calls.append(ToolCall("", "", call.arguments, self.n_calls - 1))
        reason = chunk.finish_reason
        if reason == "stop" and self.n_calls:
            reason = "tool_calls"
        return Chunk(
            text=parsed.text,
            reasoning=chunk.reasoning + reasoning,
            tool_calls=[*chunk.tool_calls, *calls],
            finish_reason=reason,
            usage=chunk.usage,
            logprobs=chunk.logprobs,
            stop_sequence=chunk.stop_sequence,
            prompt_usage=chunk.prompt_usage,
        )
