"""The server's in-memory view of the virtual keys, so that checking a key costs a dict look-up and
not a database query.

Freshness: at most once every ``refresh`` seconds (1 by default), on a request, the view asks the
database for the keys' generation (one single-row query) and reloads every key when it moved. So a
key made, revoked or rotated by another process (``lumbung keys`` on the same data directory, another
instance sharing the database) takes effect in this one on its first request after at most
``refresh`` seconds; a change made through this server's own admin API (``changed``) on its very
next request. Until the database was read once, or while it cannot be read at all, requests with a
key that is not in the config file get a 503: a key is never let in on a guess.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from lumbung.accounts.store import KeyStore, Stored, VirtualKey
from lumbung.clock import Clock
from lumbung.errors import AuthenticationError, Overloaded

log = logging.getLogger(__name__)
REFRESH = 1.0  # seconds between generation checks: how stale another process's revoke may be here


class VirtualKeys:
    """Keys by digest, reloaded when the store's generation moves."""

    def __init__(
        self,
        open_store: Callable[[], Awaitable[KeyStore]],
        *,
        clock: Clock = time.monotonic,
        wall: Callable[[], float] = time.time,
        refresh: float = REFRESH,
    ) -> None:
        self._open = open_store
        self._store: KeyStore | None = None
        self.clock = clock
        self.wall = wall
        self.refresh = refresh
        self._by_digest: dict[str, VirtualKey] = {}
        self._generation: int | None = None
        self._checked: float | None = None
        self._lock = asyncio.Lock()

    async def store(self) -> KeyStore:
        if self._store is None:
            self._store = await self._open()
        return self._store

    def changed(self) -> None:
        """This process changed a key: look again on the next request."""
        self._checked = None

    @property
    def stale(self) -> bool:
        return self._checked is None or self.clock() - self._checked >= self.refresh

    async def fresh(self) -> None:
        """Reload the keys if another process may have changed them since the last look."""
        if not self.stale:
            return
        async with self._lock:  # one look for all the requests that found the view stale
            if not self.stale:
                return
            try:
                store = await self.store()
                generation = await store.generation()
                if generation != self._generation:
                    generation, keys = await store.snapshot()
                    self._load(keys)
                    self._generation = generation
            except Exception as exc:
                if self._generation is None:
                    log.exception("the key store cannot be read")
                    raise Overloaded("The key store cannot be read now.", retry_after=1.0) from exc
                # Keep serving on the last keys read, and try again on the next request.
                log.warning("the key store cannot be read (%s); using the keys read before", exc)
                return
            self._checked = self.clock()

    def _load(self, keys: list[Stored]) -> None:
        self._by_digest = {s.digest: s.key for s in keys}

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.wall(), UTC)

    def find(self, digest: str) -> VirtualKey | None:
        """The usable key with this digest; None when there is none; 401 for a revoked or expired one
        (its holder knows the secret, so saying which it is tells them nothing new)."""
        # A dict look-up by digest: its timing can at most tell which digests exist, and a digest
        # cannot be aimed at without knowing a key.
        key = self._by_digest.get(digest)
        if key is None:
            return None
        state = key.state(self._now())
        if state == "revoked":
            raise AuthenticationError("This API key has been revoked.", code="api_key_revoked")
        if state == "expired":
            raise AuthenticationError("This API key has expired.", code="api_key_expired")
        return key
