"""Fast-forwarded structured output: the tokens a grammar forces, decoded as one batch.

Where a grammar allows exactly one continuation (a JSON schema's keys and punctuation, a forced tool
call's name), llguidance names its tokens (``compute_ff_tokens``). Sampling them one step each costs a
whole decode per token; put into the batch together, like a prompt chunk, they cost one. They go in as
a draft (speculative.py): the engine samples every position with the sequence's own chain, grammar
first, and keeps the draft while the sampled token is the forced one. So the answer is the one plain
constrained decoding gives, even where the model would spell the forced text with other tokens than
llguidance's (it then stops there and goes on from its own token); no step is skipped that could
change it. After the forced run the sequence's other drafter (n-gram or draft-model speculation), if
any, drafts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lumbung.engines.llamacpp.grammar import MaskSampler
from lumbung.engines.llamacpp.speculative import Drafter


def mask_of(stages: Iterable[Any]) -> MaskSampler | None:
    """The grammar stage among a sequence's extra sampler stages, if it has one."""
    return next((s for s in stages if isinstance(s, MaskSampler)), None)


class ForcedDrafter:
    """Drafts the grammar's forced tokens; where none are forced, ``then``'s draft (or none)."""

    def __init__(self, mask: MaskSampler, then: Drafter | None = None) -> None:
        self.mask = mask
        self.then = then
        self.forced = False  # whether the last draft was forced (counted as fast-forwarded)

    def draft(self, limit: int) -> list[int]:
        if limit <= 0:
            return []
        tokens = self.mask.forced()[:limit]
        self.forced = bool(tokens)
        if tokens or self.then is None:
            return tokens
        return self.then.draft(limit)

    def update(self, drafted: int, accepted: int) -> None:
        if not self.forced and self.then is not None:
            self.then.update(drafted, accepted)

    def close(self) -> None:
        if self.then is not None:
            self.then.close()
