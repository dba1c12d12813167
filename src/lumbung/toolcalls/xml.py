"""Calls written as XML-like elements, one per parameter, values raw (GLM 4.x, DeepSeek V3.2/V4).

A format gives three patterns over one block's body: ``call_open`` (group ``name``), ``param``
(groups ``key`` and ``value``) and ``call_close`` (None: the call ends with its block), and types
each value (``value``). Calls stream a parameter at a time, as JSON members, once each is whole
(``XmlStreamer``), like Qwen3-Coder's.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from lumbung.errors import UnsupportedParameter
from lumbung.toolcalls.base import (
    JsonRule,
    Literal,
    ParsedCall,
    ToolFormat,
    compact,
    lark_string,
    repeat,
    schema_of,
)
from lumbung.toolcalls.stream import CallStreamer
from lumbung.types import Tool


def typed_value(raw: str, text: bool) -> Any:
    """A raw value: text when marked so (by its schema or the model's own type attribute), otherwise
    read as JSON, and kept as text when it is not JSON."""
    if text:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def schema_value(raw: str, schema: dict[str, Any]) -> Any:
    """A raw value typed by its schema: strings stay text, anything else is read as JSON."""
    kind = schema.get("type")
    return typed_value(
        raw, kind == "string" or (isinstance(kind, list) and "string" in kind and raw[:1] not in '{["')
    )


def _lark_regex_text(text: str) -> str:
    """``text`` matched literally inside a Lark ``/regex/``."""
    return "".join("\\n" if c == "\n" else "\\/" if c == "/" else re.escape(c) for c in text)


class XmlFormat(ToolFormat):
    call_open: ClassVar[re.Pattern[str]]
    call_open_whole: ClassVar[re.Pattern[str] | None] = None  # where a whole block may open differently
    param: ClassVar[re.Pattern[str]]
    call_close: ClassVar[re.Pattern[str] | None] = None

    def grammar_open(self, tool: Tool, lit: Literal) -> str:
        """Lark for a forced call's block up to its first parameter."""
        raise NotImplementedError

    def grammar_param(self, key: str, text: bool, schema: dict[str, Any]) -> tuple[str, str]:
        """The text opening parameter ``key`` (``text``: a raw string value; ``schema``: its own) and
        the text closing it."""
        raise NotImplementedError

    def grammar_close(self, lit: Literal) -> str:
        raise NotImplementedError

    def grammar_in_block(
        self,
        tools: list[Tool],
        opening: str,
        closing: str,
        *,
        max_calls: int,
        lit: Literal,
        json_rule: JsonRule,
    ) -> str:
        """The calls' grammar between the Lark terms ``opening`` and ``closing`` (a block around them)."""
        inner = XmlFormat.grammar(self, tools, max_calls=max_calls, lit=lit, json_rule=json_rule)
        return f"start: {opening} calls {closing}\n" + inner.replace("start:", "calls:", 1)

    def grammar(self, tools: list[Tool], *, max_calls: int, lit: Literal, json_rule: JsonRule) -> str:
        rules = [f"start: {repeat('call', 'SEP', max_calls)}", f"SEP: {lark_string(self.separator)}"]
        names = []
        for i, tool in enumerate(tools):
            schema = schema_of(tool)
            required = set(schema.get("required", []))
            params = []
            for j, (key, sub) in enumerate(schema.get("properties", {}).items()):
                value = f"v{i}_{j}"
                text = sub.get("type") == "string"
                opening, closing = self.grammar_param(key, text, sub)
                if text:  # written raw, so only text and enums can be enforced
                    extra = sorted(set(sub) - {"type", "description", "title", "enum"})
                    if extra:
                        raise UnsupportedParameter(
                            f"Unsupported schema keyword(s) for parameter '{key}' of '{tool.name}' in this "
                            f"model's XML tool-call format: {', '.join(extra)}",
                            param="tools",
                        )
                    choices = " | ".join(lark_string(f"{e}{closing}") for e in sub.get("enum", []))
                    free = "/[^<]*" + _lark_regex_text(closing) + "/"
                    # Free text and its closing form one lexeme (lexemes are greedy; text may hold "\n").
                    rules.append(f"{value}: {choices or free}")
                    param = f"{lark_string(opening)} {value}"
                else:
                    rules.append(f"{value}: {json_rule(sub)}")
                    param = f"{lark_string(opening)} {value} {lark_string(closing)}"
                params.append(param if key in required else f"({param})?")
            body = " ".join([self.grammar_open(tool, lit), *params, self.grammar_close(lit)])
            rules.append(f"call{i}: {body}")
            names.append(f"call{i}")
        rules.insert(1, f"call: {' | '.join(names)}")
        return "\n".join(rules) + "\n"

    def value(self, match: re.Match[str], schema: dict[str, Any]) -> Any:
        return schema_value(match.group("value"), schema)

    def _props(self, name: str, tools: dict[str, Tool]) -> dict[str, Any] | None:
        tool = tools.get(name)
        if tools and tool is None:
            return None
        props = schema_of(tool).get("properties", {}) if tool else {}
        return props if isinstance(props, dict) else {}

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        calls, pos = [], 0
        while body[pos:].strip():
            opened = (self.call_open_whole or self.call_open).match(body, pos)
            if opened is None:
                return None
            name = opened.group("name").strip()
            props = self._props(name, tools)
            if props is None:
                return None
            args, pos = {}, opened.end()
            while param := self.param.match(body, pos):
                key = param.group("key").strip()
                args[key] = self.value(param, props.get(key, {}))
                pos = param.end()
            if self.call_close is not None:
                closed = self.call_close.match(body, pos)
                if closed is None:
                    return None
                pos = closed.end()
            elif body[pos:].strip():
                return None
            calls.append(ParsedCall(name, compact(args)))
        return calls or None

    def streamer(self, tools: dict[str, Tool]) -> CallStreamer | None:
        return XmlStreamer(self, tools)


class XmlStreamer(CallStreamer):
    """Sends each parameter as a JSON member (``{"key":value`` then ``,"key":value``) once it is
    whole, and ``}`` when the call closes; ``CallStreamer.close`` judges the block."""

    fmt: XmlFormat

    def __init__(self, fmt: XmlFormat, tools: dict[str, Tool]) -> None:
        super().__init__(fmt, tools)
        self.open = False
        self.members = 0
        self.props: dict[str, Any] = {}

    def in_arguments(self) -> bool:
        return self.open

    def _end_call(self, out: list[ParsedCall]) -> None:
        self._send("}" if self.members else "{}", out)
        self.open = False

    def feed(self, body: str) -> list[ParsedCall]:
        out: list[ParsedCall] = []
        while not self.whole:
            if not self.open:
                match = self.fmt.call_open.match(body, self.pos)
                if match is None:
                    return out
                name = match.group("name").strip()
                if not self._open_call(name, out):
                    return out
                self.props = self.fmt._props(name, self.tools) or {}
                self.pos, self.open, self.members = match.end(), True, 0
            elif match := self.fmt.param.match(body, self.pos):
                key = match.group("key").strip()
                value = self.fmt.value(match, self.props.get(key, {}))
                self._send(("," if self.members else "{") + compact(key) + ":" + compact(value), out)
                self.pos, self.members = match.end(), self.members + 1
            elif self.fmt.call_close is not None and (match := self.fmt.call_close.match(body, self.pos)):
                self._end_call(out)
                self.pos = match.end()
            else:
                return out
        return out

    def close(self, body: str, truncated: bool) -> list[ParsedCall] | None:
        if self.calls and self.fmt.call_close is None:  # the call ends with its block
            out = self.feed(body)
            if self.open and not body[self.pos :].strip():
                self._end_call(out)
            rest = super().close(body, truncated)
            return out + (rest or [])
        return super().close(body, truncated)
