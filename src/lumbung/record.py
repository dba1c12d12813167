"""What one request leaves behind. The request boundary (surfaces/boundary.py) opens a
``RequestRecord`` for every request it accepts; surfaces note what they learn (the model, streaming,
an in-band error), the gateway notes each attempt (which target, how it ended, the usage it reported),
and the boundary closes it once the request is over (the answer's last byte went out, the client left, or
the request was refused) and everything it started has ended. Closing hands it to the record's sinks: the
access log line, /metrics, traces, and the usage ledger's row (accounts/ledger.py: one per accepted
request, success or failure). The boundary takes the request's latency when it ends and hands the record
to an ``Outbox``, which closes it a moment later (``lumbung serve``: ``SINK_DELAY``), with any others
that ended meanwhile: work done right after an answer's last bytes were written delays the client that
reads them (on a small machine the client is often woken on the server's own CPU and waits for it).

The gateway finds the record of the request it serves through ``current`` (a context variable the
boundary sets for the request's task, inherited by the tasks it starts), so no surface passes it
along; work outside any request (the drill's probes, ``lumbung run``) finds None.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

from lumbung.accounts.keys import Caller
from lumbung.types import Usage

errlog = logging.getLogger("lumbung.errors")
SINK_DELAY = 0.002  # seconds after a request ends before ``lumbung serve`` runs its record's sinks


@dataclass(slots=True)
class AttemptNote:
    """One call to one target: ``error`` is None when it answered, ``"cancelled"`` when it was
    closed before its end (the client went away, another choice failed)."""

    target: str
    error: str | None = None
    usage: Usage | None = None
    first_token: float | None = None  # when its first token came (perf_counter, like ``start``)
    started: float | None = None  # when it began and ended (perf_counter): its span in a trace
    ended: float | None = None


@dataclass
class RequestRecord:
    """One request; never prompts or keys (``caller``: who the key belongs to, as a digest)."""

    id: str
    method: str
    path: str
    api: str = "openai"
    caller: Caller | None = None  # once the key was checked (None: no authentication)
    admin: bool = False  # an operator endpoint (/admin/..., /metrics): not API traffic, no ledger row
    start: float = field(default_factory=time.perf_counter)
    at: float = field(
        default_factory=time.time
    )  # arrival on the wall clock (epoch seconds): the ledger's time
    model: str | None = None
    status: int = 200
    stream: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    rate_limited: str | None = None  # the key's limit that refused it: requests, tokens or concurrency
    traceparent: str | None = None  # the client's W3C trace context: its trace, if any, this one joins
    attempts: list[AttemptNote] = field(default_factory=list)
    serving: str | None = None  # the target committed to answer (x-lumbung-target), once one is
    latency_ms: float | None = None
    done: bool = False
    sinks: Sequence[Callable[[RequestRecord], None]] = ()

    def attempted(
        self,
        target: str,
        error: str | None,
        usage: Usage | None,
        first_token: float | None = None,
        started: float | None = None,
    ) -> None:
        """Noted when the attempt closes: it ends now."""
        self.attempts.append(AttemptNote(target, error, usage, first_token, started, time.perf_counter()))

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

    @property
    def target(self) -> str | None:
        """The target that answered (the last one, for n > 1), None when none did."""
        answered = [a.target for a in self.attempts if a.error is None]
        return answered[-1] if answered else None

    @property
    def first_token_seconds(self) -> float | None:
        """Seconds from arrival to the first token of the answer used: the last attempt that had
        one (earlier ones failed over; for n > 1, the last choice's)."""
        for note in reversed(self.attempts):
            if note.first_token is not None:
                return note.first_token - self.start
        return None

    def finish(self, status: int | None = None) -> None:
        """A surface's word that its answer is over; ``status``: how it ended when that is not what
        was sent (a client gone before the answer). The boundary closes the record."""
        if status is not None and not self.done:
            self.status = status

    def stop(self) -> None:
        """The request is over: its latency is taken now, whenever its sinks run; later calls change
        nothing."""
        if self.latency_ms is None:
            self.latency_ms = round((time.perf_counter() - self.start) * 1000, 1)

    def close(self) -> None:
        """Once the request is over, everything of it included (the gateway's attempts are closed and
        noted by then): hand the record to its sinks, each whatever the others did; later calls change
        nothing."""
        if self.done:
            return
        self.done = True
        self.stop()
        usage = self.usage
        if usage is not None:
            if self.prompt_tokens is None:
                self.prompt_tokens = usage.prompt_tokens
            if self.completion_tokens is None:
                self.completion_tokens = usage.completion_tokens
        for sink in self.sinks:
            try:
                sink(self)
            except Exception:
                errlog.exception("request %s: a sink of its record failed (%r)", self.id, sink)


class Outbox:
    """Closes the records of ended requests ``delay`` seconds later, those that ended meanwhile in the
    same turn of the loop; with no delay, on the loop's next turn. ``drain`` closes the waiting ones
    now (at shutdown, before the usage ledger writes its last rows)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self._waiting: list[RequestRecord] = []
        self._timer: asyncio.Handle | None = None  # a TimerHandle, or the next turn's Handle

    def put(self, rec: RequestRecord) -> None:
        self._waiting.append(rec)
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = (
                loop.call_later(self.delay, self.drain) if self.delay > 0 else loop.call_soon(self.drain)
            )

    def drain(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, []
        for rec in waiting:
            rec.close()

    def __len__(self) -> int:
        return len(self._waiting)


current: ContextVar[RequestRecord | None] = ContextVar("lumbung_request_record", default=None)
