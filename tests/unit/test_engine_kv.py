"""The KV ledger agrees with a cell-by-cell model of llama.cpp's unified cache."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumbung.engines.llamacpp.kv import KvLedger


class CellModel:
    """Every cell as the set of sequences holding it: what llama.cpp does, one cell at a time."""

    def __init__(self) -> None:
        self.cells: list[set[int]] = []
        self.seqs: dict[int, list[int]] = {}  # handle -> cell indexes by position

    def extend(self, h: int, n: int) -> None:
        for _ in range(n):
            self.cells.append({h})
            self.seqs.setdefault(h, []).append(len(self.cells) - 1)

    def share(self, src: int, dst: int, n: int) -> None:
        cells = self.seqs.get(src, [])[:n]
        for c in cells:
            self.cells[c].add(dst)
        if cells:
            self.seqs[dst] = list(cells)

    def drop(self, h: int) -> None:
        for c in self.seqs.pop(h, []):
            self.cells[c].discard(h)

    def used(self) -> int:
        return sum(1 for c in self.cells if c)

    def held_only_by(self, group: set[int]) -> int:
        return sum(1 for c in self.cells if c and c <= group)


def test_shared_prefix_costs_once_and_lives_while_held() -> None:
    kv = KvLedger()
    kv.extend(0, 100)
    kv.share(0, 1, 60)
    kv.extend(1, 10)
    assert kv.used() == 110 and kv.length(1) == 70
    assert kv.held_only_by([0]) == 40  # the 60 shared cells are also 1's
    kv.drop(0)
    assert kv.used() == 70
    assert kv.held_only_by([1]) == 70


def test_share_refuses_a_busy_target_or_a_short_source() -> None:
    kv = KvLedger()
    kv.extend(0, 5)
    kv.extend(1, 1)
    with pytest.raises(ValueError):
        kv.share(0, 1, 2)
    with pytest.raises(ValueError):
        kv.share(0, 2, 6)


ops = st.lists(
    st.tuples(
        st.sampled_from(["extend", "share", "drop"]), st.integers(0, 5), st.integers(0, 5), st.integers(0, 40)
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_ledger_matches_the_cell_model(steps: list[tuple[str, int, int, int]]) -> None:
    kv, model = KvLedger(), CellModel()
    for op, a, b, n in steps:
        if op == "extend":
            kv.extend(a, n)
            model.extend(a, n)
        elif op == "drop":
            kv.drop(a)
            model.drop(a)
        elif a != b and not model.seqs.get(b) and n <= len(model.seqs.get(a, [])):
            kv.share(a, b, n)
            model.share(a, b, n)
        assert kv.used() == model.used()
        for h in range(6):
            assert kv.length(h) == len(model.seqs.get(h, []))
        for group in ({0}, {1, 2}, {0, 3, 5}):
            assert kv.held_only_by(group) == model.held_only_by(group)


def test_truncate_drops_rejected_draft_cells_only_from_their_writer() -> None:
    ledger = KvLedger()
    ledger.extend(0, 10)
    ledger.share(0, 1, 6)  # 1 took 0's first 6 cells
    ledger.extend(1, 8)  # then wrote 8 of its own (a verified draft among them)
    ledger.truncate(1, 9)  # 5 of them rejected
    assert ledger.length(1) == 9 and ledger.used() == 13  # 10 of 0's, 3 of 1's own
    ledger.truncate(1, 4)  # into the shared part: 1 lets go of 2 cells 0 still holds
    assert ledger.length(1) == 4 and ledger.length(0) == 10 and ledger.used() == 10
    ledger.drop(0)
    assert ledger.used() == 4 and ledger.held_only_by([1]) == 4
