"""Bookkeeping of KV cells shared between sequences (pure Python, no llama.cpp).

With a unified KV cache, ``llama_memory_seq_cp`` does not copy memory: it adds a sequence id to
the cells that already hold the source's prefix. Cells are freed only when no sequence holds them
any more. The ledger mirrors that, so the engine knows how many cells a set of sequences really
occupies (the prefix cache's memory budget) without asking llama.cpp, which has no API for it.

A sequence's cells are a list of blocks covering positions ``[0, n)`` in order; a block is a run
of cells written together, held by one or more sequences. Sharing a prefix that ends inside a
block splits it, for every holder, so that blocks are always shared whole.
"""

from __future__ import annotations

from collections.abc import Iterable


class Block:
    __slots__ = ("holders", "length")

    def __init__(self, length: int, holders: set[int]) -> None:
        self.length = length
        self.holders = holders


class KvLedger:
    """Which sequence (by handle) holds which KV cells."""

    def __init__(self) -> None:
        self._blocks: dict[int, list[Block]] = {}

    def length(self, handle: int) -> int:
        return sum(b.length for b in self._blocks.get(handle, ()))

    def extend(self, handle: int, count: int) -> None:
        """``handle`` wrote ``count`` new cells after its last position."""
        if count <= 0:
            return
        blocks = self._blocks.setdefault(handle, [])
        if blocks and blocks[-1].holders == {handle}:
            blocks[-1].length += count
        else:
            blocks.append(Block(count, {handle}))

    def share(self, src: int, dst: int, count: int) -> None:
        """``dst`` (empty) now also holds the first ``count`` cells of ``src``."""
        if self._blocks.get(dst):
            raise ValueError(f"sequence {dst} is not empty")
        if count > self.length(src):
            raise ValueError(f"sequence {src} holds fewer than {count} cells")
        taken: list[Block] = []
        left = count
        for block in list(self._blocks.get(src, ())):
            if left == 0:
                break
            if block.length > left:
                self._split(block, left)
            block.holders.add(dst)
            taken.append(block)
            left -= block.length
        if taken:
            self._blocks[dst] = taken

    def _split(self, block: Block, at: int) -> None:
        tail = Block(block.length - at, set(block.holders))
        block.length = at
        for holder in block.holders:
            blocks = self._blocks[holder]
            blocks.insert(blocks.index(block) + 1, tail)

    def truncate(self, handle: int, count: int) -> None:
        """``handle`` keeps only its first ``count`` cells (rejected speculative drafts)."""
        blocks = self._blocks.get(handle, [])
        kept, left = 0, count
        for block in blocks:
            if left <= 0:
                break
            if block.length > left:
                self._split(block, left)
            left -= block.length
            kept += 1
        for block in blocks[kept:]:
            block.holders.discard(handle)
        del blocks[kept:]

    def drop(self, handle: int) -> None:
        for block in self._blocks.pop(handle, ()):
            block.holders.discard(handle)

    def used(self) -> int:
        """Cells held by any sequence."""
        return sum(b.length for b in self._unique())

    def held_only_by(self, handles: Iterable[int]) -> int:
        """Cells held by no sequence outside ``handles``: what dropping all of them would free."""
        group = set(handles)
        return sum(b.length for b in self._unique() if b.holders <= group)

    def _unique(self) -> list[Block]:
        seen: dict[int, Block] = {}
        for blocks in self._blocks.values():
            for block in blocks:
                seen[id(block)] = block
        return list(seen.values())
