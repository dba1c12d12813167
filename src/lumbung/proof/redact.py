"""Redaction: what an exchange loses before it is written, so a redacted value never reaches disk.

Two kinds of rule (``recording.redact`` in the settings): JSON paths into the exchange
(``request.messages[*].content``) whose values are replaced whole, and regular expressions whose
matches are replaced in every string of the request, the answer and the error.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[REDACTED]"
_STEP = re.compile(r"([^.\[\]]+)|\[(\*|\d+)\]")
Step = str | int  # a key ("*": every key) or an index (-1: every item)


def parse_path(path: str) -> list[Step]:
    """``request.messages[*].content`` -> ["request", "messages", -1, "content"]."""
    if path.startswith("$."):
        path = path[2:]
    steps: list[Step] = []
    for part in path.split("."):
        for key, index in _STEP.findall(part):
            if key:
                steps.append(key)
            else:
                steps.append(-1 if index == "*" else int(index))
    return steps


def _redact_at(node: Any, steps: list[Step]) -> None:
    if not steps:
        return
    step, rest = steps[0], steps[1:]
    children: list[tuple[Any, Any]] = []
    if isinstance(step, int) and isinstance(node, list):
        indices = range(len(node)) if step == -1 else [step] if step < len(node) else []
        children = [(i, node[i]) for i in indices]
    elif isinstance(step, str) and isinstance(node, dict):
        keys = list(node) if step == "*" else [step] if step in node else []
        children = [(k, node[k]) for k in keys]
    for where, child in children:
        if rest:
            _redact_at(child, rest)
        elif child is not None:
            node[where] = REDACTED


class Redactor:
    def __init__(self, paths: list[str], patterns: list[str]) -> None:
        self.paths = [parse_path(p) for p in paths]
        self.pattern = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None

    @property
    def active(self) -> bool:
        return bool(self.paths) or self.pattern is not None

    def apply(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` (an exchange as a dict) redacted in place, and returned."""
        for steps in self.paths:
            _redact_at(data, steps)
        if self.pattern is not None:
            for key in ("request", "response", "error", "extra"):
                if key in data:
                    data[key] = self._scrub(data[key])
        return data

    def _scrub(self, node: Any) -> Any:
        assert self.pattern is not None
        if isinstance(node, str):
            return self.pattern.sub(REDACTED, node)
        if isinstance(node, list):
            return [self._scrub(item) for item in node]
        if isinstance(node, dict):
            return {key: self._scrub(value) for key, value in node.items()}
        return node
