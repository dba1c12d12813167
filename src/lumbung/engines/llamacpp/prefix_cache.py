"""The prefix cache: finished sequences keep their KV cells, and a new prompt that starts with the
same tokens (a shared system prompt, a growing chat) reuses them instead of recomputing.

Pure bookkeeping: entries are KV sequence handles with the tokens their cells hold; the engine does
the llama.cpp calls. The budget counts cells held by cache entries alone (cells also used by a
running sequence cost the cache nothing), measured by the ``KvLedger``; past it, or past the most
entries, the least recently used entry goes; memory entries hold beside their cells (a sliding-window
model's context checkpoints, swa.py) counts too, in cells of the same bytes. Entries carry a key (the LoRA adapter set whose KV
they hold, lora.py): a prompt only reuses cells computed under its own key.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence

from lumbung.engines.llamacpp.kv import KvLedger


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix of two token lists (slice comparisons run in C)."""
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while lo < hi:  # invariant: a[:lo] == b[:lo] and a[:hi+1] != b[:hi+1]
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class PrefixCache:
    """Finished sequences' KV, by handle, least recently used first."""

    def __init__(
        self,
        ledger: KvLedger,
        budget_cells: int,
        max_entries: int,
        side_cells: Callable[[Iterable[int]], int] | None = None,
    ) -> None:
        self.ledger = ledger
        self.side_cells = side_cells
        self.budget_cells = budget_cells
        self.max_entries = max_entries
        self._entries: OrderedDict[int, list[int]] = OrderedDict()
        self._keys: dict[int, Hashable] = {}  # an entry's adapter set, when not the base model's
        self.hits = 0
        self.misses = 0
        self.reused_tokens = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, handle: int) -> bool:
        return handle in self._entries

    @property
    def enabled(self) -> bool:
        return self.budget_cells > 0 and self.max_entries > 0

    def cells(self) -> int:
        """Cells held by cache entries and by no running sequence (and what they hold beside)."""
        side = self.side_cells(list(self._entries)) if self.side_cells else 0
        return self.ledger.held_only_by(self._entries) + side

    def match(
        self,
        prompt: Sequence[int],
        running: Iterable[tuple[int, Sequence[int]]] = (),
        key: Hashable = (),
        usable: Callable[[int, int], int] | None = None,
    ) -> tuple[int, int]:
        """The handle (an entry with ``key``, or a running sequence: the caller passes those of its
        key) sharing the longest prefix with ``prompt``, and that length; (-1, 0) if none. With
        ``usable`` (handle, shared length -> the length that can be continued), the longest usable
        one and that length. A matched entry becomes the most recently used."""
        best, best_len = -1, 0
        mine = [(h, t) for h, t in self._entries.items() if self._keys.get(h, ()) == key]
        for handle, tokens in [*mine, *running]:
            n = common_prefix(prompt, tokens)
            if n > best_len and usable is not None:
                n = usable(handle, n)
            if n > best_len:
                best, best_len = handle, n
        if best in self._entries:
            self._entries.move_to_end(best)
        if best_len:
            self.hits += 1
            self.reused_tokens += best_len
        else:
            self.misses += 1
        return best, best_len

    def settle(self, matched: int, used: int) -> None:
        """The engine reused ``used`` of the ``matched`` tokens ``match`` counted (fewer where
        they cannot all be continued): the counters say what was reused."""
        if matched <= 0:
            return
        self.reused_tokens -= matched - max(0, used)
        if used <= 0:
            self.hits -= 1
            self.misses += 1

    def add(self, handle: int, tokens: list[int], key: Hashable = ()) -> list[int]:
        """Keep ``handle``'s cells (computed under ``key``) as an entry. Returns the handles the cache
        let go of: entries made redundant by this one, then the least recently used ones beyond the
        budget."""
        freed = []
        for old, old_tokens in list(self._entries.items()):
            if self._keys.get(old, ()) != key:
                continue
            # An entry whose tokens this one extends, and whose cells it holds too, adds nothing.
            extended = len(old_tokens) <= len(tokens) and tokens[: len(old_tokens)] == old_tokens
            if extended and self.ledger.held_only_by([old]) == 0:
                freed.append(self._remove(old))
        self._entries[handle] = tokens
        if key != ():
            self._keys[handle] = key
        else:
            self._keys.pop(handle, None)
        return freed + self.shrink()

    def recent_first(self) -> list[tuple[int, list[int]]]:
        """The base model's entries (no adapter set), most recently used first."""
        return [(h, t) for h, t in reversed(self._entries.items()) if h not in self._keys]

    def shrink(self, extra_cells: int = 0) -> list[int]:
        """Evict least recently used entries until the budget (less ``extra_cells``) holds."""
        freed = []
        while self._entries and (
            len(self._entries) > self.max_entries or self.cells() > max(0, self.budget_cells - extra_cells)
        ):
            freed.append(self._remove(next(iter(self._entries))))
        return freed

    def pop_lru(self) -> int | None:
        """Give up the least recently used entry (its handle is needed for a new sequence)."""
        return self._remove(next(iter(self._entries))) if self._entries else None

    def clear(self) -> list[int]:
        return [self._remove(h) for h in list(self._entries)]

    def _remove(self, handle: int) -> int:
        del self._entries[handle]
        self._keys.pop(handle, None)
        self.ledger.drop(handle)
        return handle
