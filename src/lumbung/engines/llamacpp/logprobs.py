"""Token log-probabilities from a logits row, computed only for requests that ask for them."""

from __future__ import annotations

import ctypes

import numpy as np

# OpenAI accepts at most 20 alternatives per token.
MAX_TOP = 20


def token_logprobs(
    row: ctypes._Pointer[ctypes.c_float], n_vocab: int, chosen: int, top: int
) -> tuple[float, list[tuple[int, float]]]:
    """The chosen token's log-probability under the model's distribution (the raw logits, before
    temperature and penalties, as OpenAI reports them) and the ``top`` most likely tokens."""
    logits = np.ctypeslib.as_array(row, shape=(n_vocab,))
    peak = float(logits.max())
    lse = peak + float(np.log(np.exp(logits - peak, dtype=np.float64).sum()))
    best: list[tuple[int, float]] = []
    k = min(max(top, 0), MAX_TOP, n_vocab)
    if k:
        idx = np.argpartition(logits, -k)[-k:]
        idx = idx[np.argsort(-logits[idx], kind="stable")]
        best = [(int(i), float(logits[i]) - lse) for i in idx]
    return float(logits[chosen]) - lse, best
