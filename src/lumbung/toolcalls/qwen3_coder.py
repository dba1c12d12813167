"""Qwen3-Coder: XML-style calls, one parameter per element, values written raw::

    <tool_call>
    <function=get_weather>
    <parameter=city>
    Jakarta
    </parameter>
    </function>
    </tool_call>

Values are typed by the tool's schema: strings stay text, anything else is read as JSON. A value is
typed only once it is whole, so a call streams a parameter at a time (``_XmlStreamer``).
"""

from __future__ import annotations

import json
import re
from typing import Any

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

_FUNCTION = re.compile(r"<function=([^>\n]+)>(.*?)</function>", re.S)
_PARAM = re.compile(r"<parameter=([^>\n]+)>\n?(.*?)\n?</parameter>", re.S)


_OPEN_FUNCTION = re.compile(r"\s*<function=([^>\n]+)>")
_WHOLE_PARAM = re.compile(r"\s*" + _PARAM.pattern, re.S)
_CLOSE_FUNCTION = re.compile(r"\s*</function>")
_CLOSE = "\n</parameter>\n"
_TEXT = r"/[^<]*\n<\/parameter>\n/"


def _value(raw: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "string" or (isinstance(kind, list) and "string" in kind and raw[:1] not in '{["'):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class _XmlStreamer(CallStreamer):
    """Sends each parameter as a JSON member (``{"key":value`` then ``,"key":value``) once its
    closing tag is read, and ``}`` at ``</function>``; ``CallStreamer.close`` judges the block."""

    def __init__(self, fmt: ToolFormat, tools: dict[str, Tool]) -> None:
        super().__init__(fmt, tools)
        self.open = False
        self.members = 0
        self.props: dict[str, Any] = {}

    def in_arguments(self) -> bool:
        return self.open

    def feed(self, body: str) -> list[ParsedCall]:
        out: list[ParsedCall] = []
        while not self.whole:
            if not self.open:
                match = _OPEN_FUNCTION.match(body, self.pos)
                if match is None or not self._open_call(match.group(1).strip(), out):
                    return out
                tool = self.tools.get(match.group(1).strip())
                self.props = schema_of(tool).get("properties", {}) if tool else {}
                self.pos, self.open, self.members = match.end(), True, 0
            elif match := _WHOLE_PARAM.match(body, self.pos):
                key = match.group(1).strip()
                value = _value(match.group(2), self.props.get(key, {}))
                self._send(("," if self.members else "{") + compact(key) + ":" + compact(value), out)
                self.pos, self.members = match.end(), self.members + 1
            elif match := _CLOSE_FUNCTION.match(body, self.pos):
                self._send("}" if self.members else "{}", out)
                self.pos, self.open = match.end(), False
            else:
                return out
        return out


class Qwen3CoderFormat(ToolFormat):
    name = "qwen3_coder"
    starts = ("<tool_call>",)
    end = "</tool_call>"

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        calls = []
        for match in _FUNCTION.finditer(body):
            name = match.group(1).strip()
            tool = tools.get(name)
            if tools and tool is None:
                return None
            props = schema_of(tool).get("properties", {}) if tool else {}
            args = {
                key.strip(): _value(raw, props.get(key.strip(), {}))
                for key, raw in _PARAM.findall(match.group(2))
            }
            calls.append(ParsedCall(name, compact(args)))
        if not calls or _FUNCTION.sub("", body).strip():
            return None
        return calls

    def streamer(self, tools: dict[str, Tool]) -> CallStreamer | None:
        return _XmlStreamer(self, tools)

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        params = "".join(
            f"<parameter={k}>\n{v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}{_CLOSE}"
            for k, v in arguments.items()
        )
        return f"<tool_call>\n<function={name}>\n{params}</function>\n</tool_call>"

    def grammar(self, tools: list[Tool], *, max_calls: int, lit: Literal, json_rule: JsonRule) -> str:
        rules = [f"start: {repeat('call', 'SEP', max_calls)}", 'SEP: "\\n"']
        names = []
        for i, tool in enumerate(tools):
            schema = schema_of(tool)
            required = set(schema.get("required", []))
            params = []
            for j, (key, sub) in enumerate(schema.get("properties", {}).items()):
                value = f"v{i}_{j}"
                opening = lark_string(f"<parameter={key}>\n")
                if sub.get("type") == "string":  # written raw, so only text and enums can be enforced
                    extra = sorted(set(sub) - {"type", "description", "title", "enum"})
                    if extra and tool.strict:  # not strict: checked after generation instead
                        raise UnsupportedParameter(
                            f"Unsupported schema keyword(s) for parameter '{key}' of '{tool.name}' in this "
                            f"model's XML tool-call format: {', '.join(extra)}",
                            param="tools",
                        )
                    choices = " | ".join(lark_string(f"{e}{_CLOSE}") for e in sub.get("enum", []))
                    # Free text and its closing tag form one lexeme (lexemes are greedy; text may hold "\n").
                    rules.append(f"{value}: {choices or _TEXT}")
                    param = f"{opening} {value}"
                else:
                    rules.append(f"{value}: {json_rule(sub)}")
                    param = f"{opening} {value} {lark_string(_CLOSE)}"
                params.append(param if key in required else f"({param})?")
            head = lark_string(f"\n<function={tool.name}>\n")
            body = " ".join(params)
            close = f'"</function>\\n" {lit("</tool_call>")}'
            rules.append(f"call{i}: {lit('<tool_call>')} {head} {body} {close}")
            names.append(f"call{i}")
        rules.insert(1, f"call: {' | '.join(names)}")
        return "\n".join(rules) + "\n"
