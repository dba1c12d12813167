"""Earlier calls' ``arguments`` as templates see them: the parsed JSON value, or the client's text.

Clients send arguments as JSON text, which a template renders either as it is or parsed (Qwen's
``tojson``, Llama's ``parameters``). Text that is not JSON, or nests deeper than any tool schema
plausibly does, stays the client's text: parsing it (or re-serialising it in the template) would
recurse past Python's stack.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            stack.extend((child, level + 1) for child in item)
    return deepest


def arguments_value(text: str) -> Any:
    """The JSON value of ``text``, or ``text`` itself when it is not JSON or nests too deeply."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return text
    return value if _depth(value) <= MAX_DEPTH else text
