"""Prefix cache bookkeeping: longest match, LRU order, memory budget, redundant entries."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lumbung.engines.llamacpp.kv import KvLedger
from lumbung.engines.llamacpp.prefix_cache import PrefixCache, common_prefix


@given(st.lists(st.integers(0, 3), max_size=40), st.lists(st.integers(0, 3), max_size=40))
def test_common_prefix_is_the_naive_one(a: list[int], b: list[int]) -> None:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    assert common_prefix(a, b) == n


def cache_with(entries: dict[int, list[int]], budget: int = 1000, max_entries: int = 8) -> PrefixCache:
    kv = KvLedger()
    cache = PrefixCache(kv, budget, max_entries)
    for handle, tokens in entries.items():
        kv.extend(handle, len(tokens))
        assert cache.add(handle, tokens) == []
    return cache


def test_longest_match_wins_among_entries_and_running_sequences() -> None:
    cache = cache_with({0: [1, 2, 3, 4], 1: [1, 2, 9]})
    assert cache.match([1, 2, 3, 7]) == (0, 3)
    assert cache.match([1, 2, 9, 9]) == (1, 3)
    assert cache.match([1, 2, 3, 4, 5], running=[(7, [1, 2, 3, 4, 5, 6])]) == (7, 5)
    assert cache.match([8]) == (-1, 0)
    assert (cache.hits, cache.misses, cache.reused_tokens) == (3, 1, 11)


def test_budget_evicts_least_recently_used_first() -> None:
    cache = cache_with({0: [1] * 10, 1: [2] * 10, 2: [3] * 10}, budget=30)
    cache.match([1] * 10)  # 0 becomes the most recent
    cache.ledger.extend(3, 10)
    assert cache.add(3, [4] * 10) == [1]  # 40 cells > 30: the oldest unused one goes
    assert 1 not in cache and len(cache) == 3 and cache.cells() == 30


def test_shared_cells_are_not_charged_to_the_cache() -> None:
    cache = cache_with({0: list(range(100))}, budget=100)
    kv = cache.ledger
    kv.share(0, 5, 90)  # a running sequence reuses 90 of them
    assert cache.cells() == 10
    assert cache.shrink(extra_cells=95) == [0]  # room needed elsewhere: the entry goes
    assert kv.used() == 90  # the running sequence keeps its cells


def test_an_entry_extended_by_a_new_one_is_dropped() -> None:
    cache = cache_with({0: [1, 2, 3]})
    kv = cache.ledger
    kv.share(0, 1, 3)
    kv.extend(1, 2)
    assert cache.add(1, [1, 2, 3, 4, 5]) == [0]
    assert cache.match([1, 2, 3, 4]) == (1, 4)


def test_an_entry_with_cells_of_its_own_is_kept_even_if_a_prefix() -> None:
    cache = cache_with({0: [1, 2, 3], 1: [1, 2, 3, 4]})  # computed separately: no shared cells
    assert len(cache) == 2


def test_entry_limit_and_pop_lru() -> None:
    cache = cache_with({0: [1], 1: [2]}, max_entries=2)
    cache.ledger.extend(2, 1)
    assert cache.add(2, [3]) == [0]
    assert cache.pop_lru() == 1
    assert cache.clear() == [2] and cache.pop_lru() is None


def test_entries_match_only_prompts_under_their_own_adapter_set() -> None:
    kv = KvLedger()
    cache = PrefixCache(kv, 1000, 8)
    lora = (("test", 1.0),)
    kv.extend(0, 4)
    cache.add(0, [1, 2, 3, 4])
    kv.extend(1, 3)
    cache.add(1, [1, 2, 3], lora)  # same tokens, other KV: not redundant with entry 0
    assert len(cache) == 2
    assert cache.match([1, 2, 3, 4, 5]) == (0, 4)
    assert cache.match([1, 2, 3, 4, 5], key=lora) == (1, 3)
    assert cache.match([1, 2, 3, 4, 5], key=(("other", 1.0),)) == (-1, 0)
