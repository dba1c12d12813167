"""Speculative decoding: drafts guessed cheaply, verified in the engine's batch (pure Python here).

Answers often copy spans of their prompt or of themselves (extraction, editing, code, RAG, JSON that
echoes its input). Where the last few tokens of a sequence occurred before, the tokens that followed
them then are a cheap guess of what follows now (prompt lookup). The engine puts such a *draft* into
the same batch as the sequence's next token and every other sequence's tokens: the logits at each
draft position are what the model computes there anyway, so one step can yield several tokens.

Why the answers do not change. At each position the engine samples the token from the model's own
distribution, with the sequence's own sampler chain (grammar, penalties, seed), exactly as without
speculation; it keeps going down the draft only while the sampled token *is* the draft token (the
logits of the next position were then computed on the right prefix), and stops at the first one
that differs, keeping the token it sampled there. The draft is a deterministic function of the
tokens so far, so this is rejection sampling with a point-mass proposal q = 1[draft]: accepting d
with probability min(1, p(d)/q(d)) = p(d) and otherwise drawing from norm(max(0, p - q)) = p without
d is the same as drawing t ~ p and keeping it whether or not it equals d. Every emitted token is
therefore drawn from p(. | the tokens before it) — the distribution of plain decoding — and each
draw uses the sampler (and its seed's random stream) once per emitted token, as plain decoding does.
Greedy text differs from plain decoding only where llama.cpp's kernels round differently for a
batch of another shape (docs/performance.md, "Determinism").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(slots=True)
class SpeculationStats:
    """Counters since the model loaded (engine thread writes, the loop reads whole ints)."""

    steps: int = 0  # verification steps (one sequence, one draft)
    drafted: int = 0  # draft tokens put in a batch
    accepted: int = 0  # draft tokens that were the model's own choice

    @property
    def acceptance(self) -> float | None:
        return self.accepted / self.drafted if self.drafted else None


class Drafter(Protocol):
    """What proposes a sequence's drafts: prompt lookup here, a draft model (draft_model.py), a
    grammar's forced tokens (forced.py)."""

    def draft(self, limit: int) -> list[int]: ...

    def update(self, drafted: int, accepted: int) -> None: ...

    def close(self) -> None: ...


def verify(draft: list[int], sample: Callable[[int], int], ends: Callable[[int], bool]) -> list[int]:
    """The tokens one step emits: ``sample(i)`` draws the token after draft position ``i`` (0: after
    the sequence's last token) from the model's distribution; drawing goes on down the draft while
    it agrees with the draft, and once past the draft's end. ``ends(token)``: the answer is over
    there, so nothing after it is drawn (a grammar would refuse to go on)."""
    out: list[int] = []
    for i, guess in enumerate(draft):
        token = sample(i)
        out.append(token)
        if token != guess or ends(token):
            return out
    out.append(sample(len(draft)))  # every draft token was right: the last one's logits give one more
    return out


class NgramDrafter:
    """Prompt lookup over one sequence's tokens (prompt, then the answer so far).

    For each n-gram size k (``ngram`` down to 1) a dict maps every k tokens seen to where they last
    ended with a token after them; a draft is what followed the longest match of the sequence's last
    tokens, most recent first. Indexing is incremental (k dict writes per token), so a step costs the
    same whether the prompt has 100 tokens or 10,000.
    """

    def __init__(self, tokens: list[int], ngram: int, max_draft: int) -> None:
        self.tokens = tokens  # the sequence's own list: appended to by the engine, read here
        self.sizes = range(ngram, 0, -1)
        self.max_draft = max_draft
        self.length = max_draft  # the next draft's length, adapted to how drafts fare
        self._index: list[dict[tuple[int, ...], int]] = [{} for _ in range(ngram + 1)]
        self._seen = 0

    def _sync(self) -> None:
        toks = self.tokens
        for end in range(max(self._seen, 1), len(toks)):
            # the k tokens ending at end - 1 now have a continuation: toks[end]
            for k in self.sizes:
                if end >= k:
                    self._index[k][tuple(toks[end - k : end])] = end - 1
        self._seen = len(toks)

    def draft(self, limit: int) -> list[int]:
        """Up to ``limit`` tokens guessed to follow the sequence's tokens ([] when nothing matches)."""
        limit = min(limit, self.length)
        if limit <= 0:
            return []
        self._sync()
        toks = self.tokens
        for k in self.sizes:
            if len(toks) <= k:
                continue
            at = self._index[k].get(tuple(toks[-k:]))
            if at is not None:
                return toks[at + 1 : at + 1 + limit]
        return []

    def update(self, drafted: int, accepted: int) -> None:
        """Longer drafts while they are taken whole, shorter after a miss: a rejected draft token
        costs a batch row for nothing, and with other sequences in the batch it slows them too."""
        if accepted == drafted:
            self.length = min(self.max_draft, self.length * 2)
        else:
            self.length = max(1, accepted + 1)

    def close(self) -> None:
        """Nothing held outside the sequence's own token list."""
