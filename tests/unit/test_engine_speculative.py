"""Speculative decoding's pure parts: n-gram drafts and the acceptance rule (speculative.py)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from lumbung.engines.llamacpp.speculative import NgramDrafter, verify

VOCAB = 6


def toy_distribution(prefix: tuple[int, ...]) -> list[float]:
    """A deterministic 'model': next-token probabilities from the last two tokens."""
    rng = random.Random(hash(prefix[-2:]))
    weights = [rng.random() ** 3 for _ in range(VOCAB)]
    total = sum(weights)
    return [w / total for w in weights]


def draw(prefix: tuple[int, ...], rng: random.Random) -> int:
    return rng.choices(range(VOCAB), toy_distribution(prefix))[0]


def plain_decode(prompt: list[int], n: int, seed: int) -> list[int]:
    rng, tokens = random.Random(seed), list(prompt)
    for _ in range(n):
        tokens.append(draw(tuple(tokens), rng))
    return tokens[len(prompt) :]


def speculative_decode(prompt: list[int], n: int, seed: int, drafts: st.DataObject) -> list[int]:
    """Drafts chosen by hypothesis (any tokens, any length): only how many steps it takes may change."""
    rng, tokens = random.Random(seed), list(prompt)
    while len(tokens) - len(prompt) < n:
        draft = drafts.draw(st.lists(st.integers(0, VOCAB - 1), max_size=5))
        base = list(tokens)

        def sample(i: int, base: list[int] = base, draft: list[int] = draft) -> int:
            return draw(tuple(base + draft[:i]), rng)

        tokens += verify(draft, sample, lambda token: False)
    return tokens[len(prompt) : len(prompt) + n]


@settings(max_examples=200, deadline=None)
@given(
    prompt=st.lists(st.integers(0, VOCAB - 1), min_size=2, max_size=8),
    seed=st.integers(0, 2**32),
    data=st.data(),
)
def test_drafts_never_change_the_drawn_tokens(prompt: list[int], seed: int, data: st.DataObject) -> None:
    """Each emitted token is drawn once from p(. | tokens before it), with the same random stream as
    plain decoding: whatever the drafts, the tokens are those plain sampling draws."""
    assert speculative_decode(prompt, 12, seed, data) == plain_decode(prompt, 12, seed)


def test_verify_stops_at_the_first_disagreement_and_at_the_end() -> None:
    model = [5, 6, 9, 1]
    assert verify([5, 6, 7], model.__getitem__, lambda t: False) == [5, 6, 9]
    assert verify([5, 6, 9], model.__getitem__, lambda t: False) == [5, 6, 9, 1]  # one past the draft
    assert verify([5, 6, 9], model.__getitem__, lambda t: t == 6) == [5, 6]  # the answer ended at 6
    assert verify([], model.__getitem__, lambda t: False) == [5]


def test_ngram_drafts_copy_what_followed_the_last_occurrence() -> None:
    tokens = [1, 2, 3, 4, 5, 9, 1, 2, 3]
    drafter = NgramDrafter(tokens, ngram=3, max_draft=8)
    assert drafter.draft(8) == [4, 5, 9, 1, 2, 3]  # up to the end of what is known
    assert drafter.draft(2) == [4, 5]
    tokens += [4, 7]  # the engine appends to the sequence's own list
    assert drafter.draft(8) == []  # (4, 7) and 7 were never seen before
    tokens += [1, 2]
    assert drafter.draft(3) == [3, 4, 7]  # (7, 1, 2) is new: (1, 2), last followed by 3, 4, 7


def test_shorter_ngrams_are_tried_after_the_longest() -> None:
    tokens = [8, 1, 2, 6, 3, 2]
    drafter = NgramDrafter(tokens, ngram=3, max_draft=4)
    assert drafter.draft(4) == [6, 3, 2]  # (3, 2) and (6, 3, 2) are new; 2 was followed by 6
    assert NgramDrafter([1, 2, 3], ngram=2, max_draft=4).draft(4) == []


def test_draft_length_grows_while_taken_and_shrinks_after_a_miss() -> None:
    drafter = NgramDrafter([1, 2, 3, 4, 5, 6, 7, 8, 9] * 3, ngram=2, max_draft=8)
    assert len(drafter.draft(16)) == 8
    drafter.update(8, 2)
    assert len(drafter.draft(16)) == 3
    drafter.update(3, 3)
    drafter.update(6, 6)
    assert len(drafter.draft(16)) == 8
    drafter.update(8, 0)
    assert len(drafter.draft(16)) == 1
