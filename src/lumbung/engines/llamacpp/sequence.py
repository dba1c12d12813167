"""One generation request as the engine thread sees it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from lumbung.engines.llamacpp.detok import StopMatcher, Utf8Stream
from lumbung.engines.llamacpp.lora import BASE, LoraKey, LoraSet
from lumbung.engines.llamacpp.sampler import Sampler
from lumbung.engines.llamacpp.speculative import Drafter
from lumbung.types import Chunk, SamplingParams, TokenLogprob


@dataclass(eq=False)
class Sequence:
    """Built on the event loop by the backend; owned by the engine thread once submitted.

    ``sampler_pre`` holds extra llama.cpp sampler stages (grammars for constrained decoding) that
    run before the sampling chain built from ``params``. ``lora`` is the LoRA adapter set it
    decodes with (None: the base model).
    """

    prompt: list[int]
    params: SamplingParams
    max_tokens: int
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue[Chunk | BaseException]
    deadline: float = float("inf")
    stop_tokens: frozenset[int] = frozenset()
    sampler_pre: tuple[Any, ...] = ()
    shown_tokens: frozenset[int] = frozenset()  # special tokens written as text (tool-call markers)
    lora: LoraSet | None = None
    cancelled: bool = False
    submitted: float = field(default_factory=time.monotonic)
    # Engine-thread state below.
    handle: int = -1  # the KV sequence it decodes into
    tokens: list[int] = field(default_factory=list)  # prompt, then every sampled token
    n_past: int = 0  # tokens of this sequence in the KV cache
    n_cached: int = 0  # prompt tokens reused from the prefix cache
    generated: int = 0
    started: float = 0.0
    sampler: Sampler | None = None
    drafter: Drafter | None = None  # speculative drafts, when on for this request
    utf8: Utf8Stream = field(default_factory=Utf8Stream)
    stops: StopMatcher | None = None
    logprobs: list[TokenLogprob] = field(default_factory=list)  # not yet sent

    def emit(self, item: Chunk | BaseException) -> None:
        try:
            self.loop.call_soon_threadsafe(self.out.put_nowait, item)
        except RuntimeError:  # the event loop is gone: nobody is listening any more
            self.cancelled = True

    @property
    def lora_key(self) -> LoraKey:
        return self.lora.key if self.lora is not None else BASE

    @property
    def prefilling(self) -> bool:
        return self.n_past < len(self.prompt)

    @property
    def last_token(self) -> int:
        return self.tokens[-1]

    def kv_tokens(self) -> list[int]:
        """The tokens whose KV this sequence holds, in order."""
        return self.tokens[: self.n_past]
