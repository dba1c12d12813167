"""What every tool-call format provides, and the incremental parser they share.

A format (one module per model family) knows three things: how to describe tools and earlier calls
to the model when its chat template cannot (``render_tools``, ``render_call``), the Lark grammar of a
forced call for constrained decoding (``grammar``), and how a call looks in the output
(``starts``/``end`` markers and ``parse_block``), plus, where arguments are JSON text, the heads
that let a call stream (``stream_heads``). ``CallParser`` turns streamed text into plain text and
calls: a streamable call opens as soon as its name is known and its arguments follow in fragments
(``stream.CallStreamer``); any other call is emitted whole when its block closes, with arguments
re-serialised as compact JSON. A malformed block that was never streamed comes out as plain text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, ClassVar

from lumbung.toolcalls.parsed import Parsed as Parsed  # re-exported: formats and tests use base
from lumbung.toolcalls.parsed import ParsedCall as ParsedCall
from lumbung.toolcalls.parsed import partial_suffix as partial_suffix
from lumbung.toolcalls.reasoning import Splitter, ThinkSplitter
from lumbung.toolcalls.stream import CallStreamer
from lumbung.types import Tool

# Renders a marker as a Lark terminal (a special token where the vocabulary has one).
Literal = Callable[[str], str]
# Renders a JSON schema as a Lark rule body (llguidance's ``%json``).
JsonRule = Callable[[dict[str, Any]], str]


def lark_string(text: str) -> str:
    """A Lark string literal (llguidance reads raw UTF-8, not ``\\u`` escapes)."""
    return json.dumps(text, ensure_ascii=False)


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def call_from_json(obj: Any, tools: dict[str, Tool], arg_keys: tuple[str, ...]) -> ParsedCall | None:
    """A ``{"name": ..., "arguments": {...}}`` object (arguments may be JSON text) or None."""
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    name = obj["name"]
    if tools and name not in tools:
        return None
    args: Any = {}
    for key in arg_keys:
        if key in obj:
            args = obj[key]
            break
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return ParsedCall(name, compact(args))


def one_json_call(body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
    """A block holding one ``{"name": ..., "arguments": {...}}`` object (Hermes, Gemma)."""
    try:
        call = call_from_json(json.loads(body), tools, ("arguments", "parameters"))
    except ValueError:
        return None
    return [call] if call else None


def named_call(name: str, raw: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
    """A call whose name and JSON-object arguments came apart (DeepSeek, Mistral v11)."""
    name = name.strip()
    if not name or (tools and name not in tools):
        return None
    try:
        args = json.loads(raw)
    except ValueError:
        return None
    return [ParsedCall(name, compact(args))] if isinstance(args, dict) else None


def json_values(text: str) -> list[Any] | None:
    """Every JSON value in ``text`` (separated by whitespace, commas or semicolons), or None."""
    decoder = json.JSONDecoder()
    out: list[Any] = []
    i = 0
    while True:
        while i < len(text) and text[i] in " \t\r\n,;":
            i += 1
        if i >= len(text):
            return out
        try:
            value, i = decoder.raw_decode(text, i)
        except ValueError:
            return None
        out.append(value)


def repeat(rule: str, sep: str, most: int) -> str:
    """Lark for 1..``most`` ``rule``s separated by ``sep``, unrolled: ``a (s a (s a)?)?``."""
    out = rule
    for _ in range(most - 1):
        out = f"{rule} ({sep} {out})?"
    return out


def schema_of(tool: Tool) -> dict[str, Any]:
    return tool.parameters or {"type": "object"}


class ToolFormat:
    """One model family's tool-call syntax. Subclasses set the markers and override the hooks."""

    name: ClassVar[str]
    starts: ClassVar[tuple[str, ...]]  # markers opening a call block
    end: ClassVar[str | None] = None  # closing marker; None: the block runs to the next start or the end
    ignore: ClassVar[tuple[str, ...]] = ()  # wrapper markers dropped from the text
    separator: ClassVar[str] = "\n"  # between parallel calls in a forced grammar
    # Where a block's first call, and each later call in the same block, open: each pattern ends
    # just before the ``{`` of the arguments and names the tool (group ``jname``: a JSON string;
    # ``name``: bare text). None: the format's calls are sent whole when their block closes.
    stream_heads: ClassVar[tuple[re.Pattern[str], ...]] = ()
    stream_next: ClassVar[tuple[re.Pattern[str], ...]] = ()

    @property
    def trigger(self) -> str | None:
        """The text that opens a call (and its grammar) while ``tool_choice`` is auto; None: not lazy."""
        return self.starts[0]

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        """The calls in one block's body (between the markers), or None when malformed."""
        raise NotImplementedError

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        """One call as the model would write it, markers included."""
        raise NotImplementedError

    def render_tools(self, tools: list[Tool]) -> str:
        """Instructions and definitions for templates that cannot render ``tools`` themselves."""
        listing = "\n".join(
            compact(
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description or "",
                        "parameters": schema_of(t),
                    },
                }
            )
            for t in tools
        )
        example = self.render_call("function_name", {"argument": "value"})
        return (
            f"You may call these functions:\n{listing}\nTo call a function, answer with exactly:\n{example}"
        )

    def grammar_call(self, tool: Tool, args_rule: str, lit: Literal) -> str:
        """The Lark body of one forced call of ``tool``; ``args_rule`` names its JSON arguments."""
        raise NotImplementedError

    def grammar_prefix(self, lit: Literal) -> str:
        """Lark text before the calls of a forced answer (a wrapper such as Mistral's)."""
        return ""

    def grammar_suffix(self, lit: Literal) -> str:
        return ""

    def grammar(self, tools: list[Tool], *, max_calls: int, lit: Literal, json_rule: JsonRule) -> str:
        """A Lark grammar accepting one to ``max_calls`` calls of the given tools."""
        rules = []
        names = []
        for i, tool in enumerate(tools):
            rules.append(f"call{i}: {self.grammar_call(tool, f'args{i}', lit)}")
            rules.append(f"args{i}: {json_rule(schema_of(tool))}")
            names.append(f"call{i}")
        parts = [self.grammar_prefix(lit), repeat("call", "SEP", max_calls), self.grammar_suffix(lit)]
        head = [f"start: {' '.join(p for p in parts if p)}", f"call: {' | '.join(names)}"]
        head.append(f"SEP: {lark_string(self.separator)}")
        return "\n".join(head + rules) + "\n"

    def parser(self, tools: list[Tool]) -> CallParser:
        return CallParser(self, tools)

    def splitter(self, template: str, prompt: str) -> Splitter | None:
        """What splits reasoning off this family's answers, given the chat template and the prompt's
        end (a prompt ending in the opening marker starts the answer inside the reasoning)."""
        if "<think>" not in template:
            return None
        return ThinkSplitter(inside=prompt.rstrip().endswith("<think>"))

    def streamer(self, tools: dict[str, Tool]) -> CallStreamer | None:
        """What streams one block's calls; None: they are sent whole when the block closes."""
        return CallStreamer(self, tools) if self.stream_heads else None


class CallParser:
    """Incremental: ``feed`` streamed text, then ``finish``. Output is the same however text is split."""

    def __init__(self, fmt: ToolFormat, tools: list[Tool]) -> None:
        self.fmt = fmt
        self.tools = {t.name: t for t in tools}
        self.buf = ""
        self.in_call = False
        self.opened = ""  # the start marker of the open block
        self.held_space = ""  # trailing whitespace: dropped if a call follows
        self.n_calls = 0
        self.streamer: CallStreamer | None = None  # the open block's, where the format streams
        self._text_markers = fmt.starts + fmt.ignore
        self._closers = (fmt.end,) if fmt.end else fmt.starts + fmt.ignore

    def _text(self, out: Parsed, text: str) -> None:
        if not text:
            return
        stripped = text.rstrip()
        if stripped:
            out.text += self.held_space + stripped
            self.held_space = ""
        self.held_space += text[len(stripped) :]

    def _open(self, marker: str) -> None:
        self.in_call, self.opened = True, marker
        self.streamer = self.fmt.streamer(self.tools)

    def _calls(self, out: Parsed, calls: list[ParsedCall]) -> None:
        if any(c.new for c in calls):
            self.held_space = ""  # whitespace before a call is dropped
        out.calls.extend(calls)
        self.n_calls += sum(c.new for c in calls)

    def _block(self, out: Parsed, body: str, closing: str, truncated: bool = False) -> None:
        streamer, self.streamer = self.streamer, None
        streamed = streamer.close(body, truncated) if streamer is not None else None
        if streamed is not None:
            self._calls(out, streamed)
            return
        calls = self.fmt.parse_block(body, self.tools)
        if calls is None:
            self._text(out, self.opened + body + closing)
            return
        self._calls(out, calls)

    def _find(self, markers: tuple[str, ...]) -> tuple[int, str]:
        first, found = -1, ""
        for marker in markers:
            i = self.buf.find(marker)
            if i != -1 and (first == -1 or i < first):
                first, found = i, marker
        return first, found

    def feed(self, text: str) -> Parsed:
        out = Parsed()
        self.buf += text
        while True:
            if not self.in_call:
                i, marker = self._find(self._text_markers)
                if i == -1:
                    keep = partial_suffix(self.buf, self._text_markers)
                    self._text(out, self.buf[: len(self.buf) - keep])
                    self.buf = self.buf[len(self.buf) - keep :]
                    return out
                self._text(out, self.buf[:i])
                self.buf = self.buf[i + len(marker) :]
                if marker in self.fmt.starts:
                    self._open(marker)
                continue
            i, marker = self._find(self._closers)
            if i == -1:
                if self.streamer is not None:  # all but what may be the start of a closing marker
                    safe = len(self.buf) - partial_suffix(self.buf, self._closers)
                    self._calls(out, self.streamer.feed(self.buf[:safe]))
                return out
            body = self.buf[:i]
            self.buf = self.buf[i + len(marker) :]
            self.in_call = False
            self._block(out, body, marker if self.fmt.end else "")
            if not self.fmt.end:  # the marker that closed this block may open the next
                self.buf = marker + self.buf

    def finish(self, truncated: bool = False) -> Parsed:
        """The rest; ``truncated``: the answer was cut (``max_tokens``), so a streamed call may
        stay incomplete, as its finish reason says, instead of being an error."""
        out = Parsed()
        if self.in_call:
            self.in_call = False
            self._block(out, self.buf, "", truncated)
        else:
            self._text(out, self.buf)
        self.buf = ""
        if not self.n_calls and self.held_space:
            out.text += self.held_space
        self.held_space = ""
        return out
