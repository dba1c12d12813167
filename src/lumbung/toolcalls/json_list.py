"""Families whose calls are one JSON array between two markers, each element one call (Apertus,
Command R): the array's parsing and the forced grammar's brackets are shared; a family says how an
element names its tool and carries its arguments (``element``)."""

from __future__ import annotations

import json
from typing import Any

from lumbung.toolcalls.base import Literal, ParsedCall, ToolFormat, compact
from lumbung.types import Tool


class JsonListFormat(ToolFormat):
    separator = ", "

    def element(self, value: dict[str, Any]) -> tuple[str, Any] | None:
        """The tool's name and its arguments in one element of the array; None: not a call."""
        raise NotImplementedError

    def parse_block(self, body: str, tools: dict[str, Tool]) -> list[ParsedCall] | None:
        try:
            values = json.loads(body)
        except ValueError:
            return None
        if not isinstance(values, list) or not values:
            return None
        calls = []
        for value in values:
            found = self.element(value) if isinstance(value, dict) else None
            if found is None:
                return None
            name, args = found
            if (tools and name not in tools) or not isinstance(args, dict):
                return None
            calls.append(ParsedCall(name, compact(args)))
        return calls

    def grammar_prefix(self, lit: Literal) -> str:
        return f'{lit(self.starts[0])} "["'

    def grammar_suffix(self, lit: Literal) -> str:
        return f'"]" {lit(self.end or "")}'
