"""Context checkpoints of sliding-window models (swa.py): where they are taken, which are kept,
where a prefix is continued, and how the prefix cache counts their memory."""

from __future__ import annotations

import ctypes

from hypothesis import given
from hypothesis import strategies as st

from lumbung.engines.llamacpp import logs
from lumbung.engines.llamacpp.kv import KvLedger
from lumbung.engines.llamacpp.prefix_cache import PrefixCache
from lumbung.engines.llamacpp.swa import Checkpoint, Checkpoints, reuse_point, window_cells


def cp(pos: int, size: int = 10) -> Checkpoint:
    return Checkpoint(pos, bytes(size))


def test_prompt_chunks_end_where_a_checkpoint_is_due() -> None:
    cps = Checkpoints(every=512)
    assert cps.cut(0, 0, 512, tail=900) == 512  # the first multiple
    assert cps.cut(0, 0, 600, tail=900) == 512
    assert cps.cut(0, 512, 512, tail=900) == 260  # 128 before the tail comes first
    assert cps.cut(0, 772, 512, tail=900) == 96  # then 32 before it
    assert cps.cut(0, 868, 512, tail=900) == 32  # then the tail
    assert cps.cut(0, 900, 512, tail=900) == 124  # past the tail: the next multiple
    assert cps.cut(0, 300, 100, tail=900) == 100  # a short chunk is left alone
    cps.want(0, 305)
    assert cps.cut(0, 0, 512, tail=900) == 305  # where it parted from a cached prompt
    assert cps.cut(1, 0, 512, tail=900) == 512  # another handle's wish is not this one's


def test_checkpoints_are_due_at_multiples_wanted_places_and_near_the_tail_once() -> None:
    cps = Checkpoints(every=512)
    cps.want(0, 700)
    due = [n for n in range(0, 1400) if cps.due(0, n, tail=1300)]
    assert due == [512, 700, 1024, 1172, 1268, 1300]
    cps.add(0, cp(512))
    assert not cps.due(0, 512, tail=1300)  # already taken
    assert not cps.due(0, 1301, tail=1300)  # generating: no more
    cps.drop(0)
    assert not cps.due(0, 700, tail=1300)


@given(st.lists(st.integers(1, 5000), min_size=1, max_size=30, unique=True), st.integers(1, 5))
def test_the_newest_is_always_kept_and_at_most_most(positions: list[int], most: int) -> None:
    cps = Checkpoints(every=512, most=most)
    for pos in sorted(positions):  # a sequence takes them as it reads on
        cps.add(7, cp(pos))
        kept = cps.positions(7)
        assert kept == sorted(kept) and len(kept) <= most and pos in kept


def test_thinning_drops_where_they_lie_densest_never_near_the_prompts_end() -> None:
    cps = Checkpoints(most=4)
    for pos in (512, 1024, 1100, 2000, 2096, 2128):
        cps.add(1, cp(pos))
    assert cps.positions(1) == [512, 2000, 2096, 2128]  # the tail group stays
    even = Checkpoints(every=1024, most=5)
    for pos in [*range(1024, 8193, 1024), 8400, 8496, 8528]:
        even.add(2, cp(pos))
    kept = even.positions(2)
    assert kept[-3:] == [8400, 8496, 8528] and kept[0] <= 2048  # early ones (a system prompt) too


def test_the_best_checkpoint_is_the_latest_at_or_before_the_limit() -> None:
    cps = Checkpoints()
    for pos in (512, 1024, 1300):
        cps.add(3, cp(pos))
    assert cps.best(3, 1299) == cp(1024)
    assert cps.best(3, 1300) == cp(1300)
    assert cps.best(3, 511) is None
    assert cps.best(4, 5000) is None


def test_a_sequence_inherits_the_checkpoints_of_what_it_took_over_sharing_their_bytes() -> None:
    cps = Checkpoints()
    cps.add(0, cp(512, 100))
    cps.add(0, cp(1024, 100))
    cps.inherit(0, 1, 900)
    assert cps.positions(1) == [512]
    assert cps.bytes() == 200  # the shared one once
    assert cps.bytes([1]) == 100
    cps.drop(0)
    assert cps.bytes() == 100 and cps.positions(0) == []


def test_reuse_is_the_whole_source_at_its_end_else_a_checkpoint_else_nothing() -> None:
    assert reuse_point(900, 900, None) == (900, False)  # a chat growing turn by turn
    assert reuse_point(900, 950, 512) == (512, True)  # a shared system prompt
    assert reuse_point(900, 950, None) == (0, False)  # no window to continue from
    assert reuse_point(900, 950, 901) == (0, False)
    assert reuse_point(0, 950, 512) == (0, False)


def test_window_cells_follow_llama_cpps_sizing() -> None:
    assert window_cells(512, 4, 512) == 2560  # llama-server's 4 slots
    assert window_cells(512, 6, 512) == 3584
    assert window_cells(100, 1, 32) == 256


def test_the_prefix_cache_counts_its_entries_checkpoints_in_its_budget() -> None:
    ledger, cps = KvLedger(), Checkpoints()
    cache = PrefixCache(ledger, 1000, 8, side_cells=lambda hs: cps.bytes(hs) // 10)
    ledger.extend(0, 300)
    cps.add(0, cp(256, 5000))  # 500 cells' worth
    assert cache.add(0, list(range(300))) == []
    assert cache.cells() == 800
    ledger.extend(1, 300)
    cps.add(1, cp(256, 5000))
    assert cache.add(1, [9] * 300) == [0]  # 1600 > 1000: the older goes


def test_settle_counts_what_was_reused_not_what_matched() -> None:
    ledger = KvLedger()
    cache = PrefixCache(ledger, 1000, 8)
    ledger.extend(0, 10)
    cache.add(0, list(range(10)))
    cache.match([*range(10), 99])
    cache.settle(10, 0)  # nothing could be continued
    assert (cache.hits, cache.misses, cache.reused_tokens) == (0, 1, 0)
    cache.match([*range(10), 99])
    cache.settle(10, 8)
    assert (cache.hits, cache.reused_tokens) == (1, 8)


def test_the_sliding_window_part_of_kv_is_read_from_llama_cpps_log() -> None:
    null = ctypes.c_void_p(0)
    with logs.buffer_sizes() as sizes:
        logs._on_log(2, b"llama_kv_cache_iswa: creating non-SWA KV cache, size = 16384 cells\n", null)
        logs._on_log(2, b"llama_kv_cache:        CPU KV buffer size =    48.00 MiB\n", null)
        logs._on_log(2, b"llama_kv_cache_iswa: creating     SWA KV cache, size = 2560 cells\n", null)
        logs._on_log(2, b"llama_kv_cache:        CPU KV buffer size =    37.50 MiB\n", null)
        logs._on_log(2, b"llama_context:        CPU compute buffer size =   515.00 MiB\n", null)
    assert sizes["KV"] == int(85.5 * 2**20) and sizes["KV SWA"] == int(37.5 * 2**20)
    assert sizes["KV cells"] == 16384 and sizes["KV SWA cells"] == 2560
    assert sizes["compute"] == 515 * 2**20


def test_the_match_is_the_longest_prefix_that_can_be_continued() -> None:
    ledger = KvLedger()
    cache = PrefixCache(ledger, 1000, 8)
    for handle, tokens in {0: [1, 2, 3, 4, 5, 6], 1: [1, 2, 3, 4, 9]}.items():
        ledger.extend(handle, len(tokens))
        cache.add(handle, tokens)
    prompt = [1, 2, 3, 4, 5, 7, 8]
    assert cache.match(prompt) == (0, 5)
    # entry 0 can be continued at a checkpoint at 2 only; entry 1 as far as it is shared
    assert cache.match(prompt, usable=lambda h, n: 2 if h == 0 else 0) == (0, 2)
    assert cache.match(prompt, usable=lambda h, n: 2 if h == 0 else n) == (1, 4)
    assert cache.match(prompt, usable=lambda h, n: 0) == (-1, 0)
