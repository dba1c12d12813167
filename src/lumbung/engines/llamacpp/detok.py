"""Token bytes to text, incrementally: UTF-8 split across tokens, and stop strings held back.

Pure code, no llama.cpp: unit-tested byte by byte.
"""

from __future__ import annotations

import codecs


class Utf8Stream:
    """Joins token byte pieces into text; an incomplete UTF-8 sequence waits for the next piece."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


class StopMatcher:
    """Finds stop strings in streamed text without ever emitting any part of one.

    Text that could be the start of a stop string is held back until it is clearly not.
    """

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self._held = ""
        self.matched: str | None = None  # the stop string found, once found
        self._longest = max((len(s) for s in self.stops), default=0)

    def feed(self, text: str) -> tuple[str, bool]:
        """Return (text safe to emit, whether a stop string was reached)."""
        if not self.stops:
            return text, False
        buf = self._held + text
        # Generation halts the moment any stop string is complete, so the match that *ends* first
        # wins (on a tie, the one that starts first); this is the same however the text is chunked.
        best: tuple[int, int, str] | None = None
        for stop in self.stops:
            i = buf.find(stop)
            if i != -1 and (best is None or (i + len(stop), i) < best[:2]):
                best = (i + len(stop), i, stop)
        if best is not None:
            self._held = ""
            self.matched = best[2]
            return buf[: best[1]], True
        keep = 0
        for n in range(min(len(buf), self._longest - 1), 0, -1):
            tail = buf[-n:]
            if any(s.startswith(tail) for s in self.stops):
                keep = n
                break
        self._held = buf[len(buf) - keep :] if keep else ""
        return (buf[: len(buf) - keep] if keep else buf), False

    def flush(self) -> str:
        """At the end of generation, held text was not a stop after all."""
        out, self._held = self._held, ""
        return out
