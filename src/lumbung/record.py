"""What one request leaves behind. The request boundary opens a ``RequestRecord`` for every request
it accepts; the gateway notes each attempt on it (which target, how it ended, the usage it reported);
the boundary closes it once the answer's last byte went out, the client left, or it was refused. It
becomes the request's access log line, and it is where the usage ledger's row will come from: one per
accepted request, success or failure.

The gateway finds the record of the request it serves through ``current`` (a context variable the
boundary sets for the request's task, inherited by the tasks it starts), so no surface passes it
along; work outside any request (the drill's probes, ``lumbung run``) finds None.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

from lumbung.types import Usage


@dataclass(slots=True)
class AttemptNote:
    """One call to one target: ``error`` is None when it answered."""

    target: str
    error: str | None = None
    usage: Usage | None = None


@dataclass
class RequestRecord:
    attempts: list[AttemptNote] = field(default_factory=list)

    def attempted(self, target: str, error: str | None, usage: Usage | None) -> None:
        self.attempts.append(AttemptNote(target, error, usage))

    @property
    def usage(self) -> Usage | None:
        """The usage of every answer (several for n > 1), None when nothing answered."""
        answered = [a.usage for a in self.attempts if a.usage is not None]
        if not answered:
            return None
        return Usage(
            sum(u.prompt_tokens for u in answered),
            sum(u.completion_tokens for u in answered),
            sum(u.cached_tokens for u in answered),
        )


current: ContextVar[RequestRecord | None] = ContextVar("lumbung_request_record", default=None)
