"""A backend (engines/base.py protocol) that misbehaves on command, for in-process tests of the HTTP
layer: no model, no sockets. Each call to ``stream`` takes the next step of ``script`` (or ``default``):

    "ok"            ``words`` chunks of text, then a finish chunk with usage
    Fail(e, k)      ``k`` chunks of text, then raises ``e`` (k=0: before the first chunk)
    Hang(k)         ``k`` chunks of text, then waits forever (until closed or cancelled)
    Crash(k)        ``k`` chunks of text, then raises a non-API exception (a bug in the backend)
    Say(texts)      one chunk per text, then a finish chunk with usage
    "empty"         ends without a single chunk
    "truncated"     one chunk of text, then ends without a finish reason
    Slow(gate, e)   nothing until the test sets ``gate`` (a prompt still being read), then "ok", or
                    raises ``e``

Everything it saw is recorded: the requests, how many streams were opened, and how many were closed
(a closed stream is how a cancellation reaches a backend).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from lumbung.engines.base import Embeddings
from lumbung.errors import ApiError
from lumbung.types import ChatRequest, Chunk, CompletionRequest, ModelInfo, Usage


@dataclass(frozen=True)
class Fail:
    error: ApiError
    after: int = 0


@dataclass(frozen=True)
class Hang:
    after: int = 0


@dataclass(frozen=True)
class Crash:
    after: int = 0


@dataclass(frozen=True)
class Say:
    texts: tuple[str, ...]


@dataclass(frozen=True)
class Slow:
    gate: asyncio.Event
    error: ApiError | None = None


Step = str | Fail | Hang | Crash | Say | Slow


@dataclass
class FakeBackend:
    name: str = "fake"
    model_ids: list[str] = field(default_factory=lambda: ["fake-model"])
    script: list[Step] = field(default_factory=list)
    default: Step = "ok"
    words: int = 3
    requests: list[ChatRequest | CompletionRequest] = field(default_factory=list)
    opened: int = 0
    closed: int = 0
    hanging: int = 0  # streams waiting in a Hang right now
    embed_error: ApiError | None = None

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(id=m) for m in self.model_ids]

    def then(self, *steps: Step) -> FakeBackend:
        """Queue the next calls' behaviour."""
        self.script.extend(steps)
        return self

    def stream(self, request: ChatRequest | CompletionRequest) -> AsyncGenerator[Chunk, None]:
        self.requests.append(request)
        step = self.script.pop(0) if self.script else self.default
        return self._run(step)

    async def _run(self, step: Step) -> AsyncGenerator[Chunk, None]:
        self.opened += 1
        try:
            if step == "empty":
                return
            if isinstance(step, Slow):
                await step.gate.wait()
                if step.error is not None:
                    raise step.error
            if isinstance(step, Say):
                for text in step.texts:
                    yield Chunk(text=text)
                yield Chunk(
                    finish_reason="stop", usage=Usage(prompt_tokens=2, completion_tokens=len(step.texts))
                )
                return
            count = self.words
            if isinstance(step, Fail | Hang | Crash):
                count = step.after
            elif step == "truncated":
                count = 1
            for i in range(count):
                yield Chunk(text=f"{self.name}{i} ")
            if isinstance(step, Fail):
                raise step.error
            if isinstance(step, Crash):
                raise RuntimeError(f"{self.name} crashed")
            if isinstance(step, Hang):
                self.hanging += 1
                try:
                    await asyncio.Event().wait()
                finally:
                    self.hanging -= 1
            if step == "truncated":
                return
            yield Chunk(finish_reason="stop", usage=Usage(prompt_tokens=2, completion_tokens=count))
        finally:
            self.closed += 1

    async def embed(self, model: str, inputs: list[str]) -> Embeddings:
        if self.embed_error is not None:
            raise self.embed_error
        return Embeddings([[float(len(text)), 1.0] for text in inputs], prompt_tokens=len(inputs))

    async def count_tokens(self, request: ChatRequest | CompletionRequest) -> int:
        return 2

    async def health(self) -> bool:
        return True

    @property
    def open_streams(self) -> int:
        return self.opened - self.closed
