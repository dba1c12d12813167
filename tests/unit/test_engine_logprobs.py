"""Log-probabilities from a logits row: a proper log-softmax, top alternatives in order."""

from __future__ import annotations

import ctypes
import math

import pytest

from lumbung.engines.llamacpp.logprobs import MAX_TOP, token_logprobs


def row(values: list[float]) -> ctypes._Pointer[ctypes.c_float]:
    arr = (ctypes.c_float * len(values))(*values)
    return ctypes.cast(arr, ctypes.POINTER(ctypes.c_float))


def test_logprobs_are_a_log_softmax() -> None:
    values = [1.0, 3.0, 2.0, -1.0]
    lse = math.log(sum(math.exp(v) for v in values))
    chosen, top = token_logprobs(row(values), 4, 2, 2)
    assert chosen == pytest.approx(2.0 - lse)
    assert [t for t, _ in top] == [1, 2]
    assert top[0][1] == pytest.approx(3.0 - lse)
    assert sum(math.exp(v - lse) for v in values) == pytest.approx(1.0)


def test_zero_alternatives_and_the_cap() -> None:
    values = [float(i) for i in range(50)]
    assert token_logprobs(row(values), 50, 0, 0)[1] == []
    _, top = token_logprobs(row(values), 50, 0, 99)
    assert len(top) == MAX_TOP and [t for t, _ in top] == list(range(49, 29, -1))


def test_large_logits_do_not_overflow() -> None:
    chosen, _ = token_logprobs(row([1000.0, 1000.0]), 2, 0, 1)
    assert chosen == pytest.approx(math.log(0.5))
