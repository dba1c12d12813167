"""How one engine step fills its batch (pure: unit-tested without llama.cpp).

Every running sequence that is generating gets its next token first, so no stream ever waits for a
prompt; the room left goes to prompts being read, oldest request first, in chunks. While anything
is generating, a step reads at most ``prefill_chunk`` prompt tokens: a long prompt then delays the
running streams by one chunk's compute per token, never by the whole prompt.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence


def prefill_shares(
    generating: int, remaining: Sequence[int], batch_size: int, prefill_chunk: int
) -> list[int]:
    """Prompt tokens each prefilling sequence (oldest first, ``remaining`` tokens each) reads now."""
    room = batch_size - generating
    if generating:
        room = min(room, prefill_chunk)
    shares = []
    for need in remaining:
        take = max(0, min(need, room))
        shares.append(take)
        room -= take
    return shares


def adapter_turn(keys: Sequence[Hashable], turn: int) -> Hashable:
    """Which adapter set decodes this step, given each running sequence's set (oldest first).

    llama.cpp applies LoRA adapters per context, so one step can only serve one set: with k sets
    running, steps take them in turn (in order of their oldest sequence), and each sequence advances
    every k-th step. That is the price of mixing adapters: per-stream speed divided by k, and
    smaller batches; requests of one set still batch together.
    """
    distinct = list(dict.fromkeys(keys))
    return distinct[turn % len(distinct)]
