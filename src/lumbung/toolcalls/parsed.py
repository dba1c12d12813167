"""What a parser step hands to the output shaper: text, and calls whole or in fragments."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ParsedCall:
    """A call opening (``new``: its name and the start of its arguments), or, when not ``new``, a
    fragment of arguments continuing the call opened last."""

    name: str
    arguments: str  # compact JSON text, or a piece of it
    new: bool = True


@dataclass(slots=True)
class Parsed:
    """What one parser step produced: text to show and call openings and fragments, in order."""

    text: str = ""
    calls: list[ParsedCall] = field(default_factory=list)


def joined(calls: list[ParsedCall]) -> list[ParsedCall]:
    """Whole calls from openings and fragments (what a client accumulates)."""
    out: list[ParsedCall] = []
    for call in calls:
        if call.new or not out:
            out.append(ParsedCall(call.name, call.arguments))
        else:
            out[-1].arguments += call.arguments
    return out


def partial_suffix(text: str, markers: tuple[str, ...]) -> int:
    """Length of the longest end of ``text`` that could begin one of ``markers``."""
    best = 0
    for marker in markers:
        for n in range(min(len(text), len(marker) - 1), best, -1):
            if marker.startswith(text[-n:]):
                best = n
                break
    return best
