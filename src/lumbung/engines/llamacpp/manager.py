"""Which local models are loaded: load on first use, unload after an idle keep-alive, and keep
the loaded ones within a memory budget by unloading the least recently used idle model.

A request holds a *lease* on its model for as long as it runs (``async with manager.lease(id)``);
a leased model, or one with requests in its engine, is never unloaded. A request may change its
model's keep-alive from then on (``set_keep_alive``, Ollama's ``keep_alive``) or ask for it to unload
once idle (``unload_when_idle``); a reload starts again from the configured keep-alive. The loader is
a parameter, so tests swap in a fake (no patching); so is the clock, so tests step through keep-alives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from lumbung.clock import Clock, monotonic
from lumbung.errors import EngineError, ModelFileError, ModelNotFound, ModelUnavailable, Overloaded

log = logging.getLogger(__name__)

SWEEP_SECONDS = 0.5


class Loadable(Protocol):
    """What the manager needs of a loaded model (``LocalModel`` in production)."""

    @property
    def memory_bytes(self) -> int: ...

    @property
    def busy(self) -> bool: ...  # requests running or queued in its engine

    @property
    def last_used(self) -> float: ...  # its engine's last activity, on the manager's clock

    def close(self) -> None: ...


@dataclass
class Slot:
    """A loaded model with its leases and the last time one ended."""

    model: Loadable
    keep_alive: float
    released: float  # when its last lease ended (or it loaded)
    leases: int = 0

    def idle_since(self) -> float:
        return max(self.released, self.model.last_used)

    def idle(self) -> bool:
        return self.leases == 0 and not self.model.busy

    def expires_in(self, now: float) -> float | None:
        """Seconds until the keep-alive unloads it (None: kept forever or in use)."""
        if self.keep_alive < 0 or not self.idle():
            return None
        return max(0.0, self.idle_since() + self.keep_alive - now)


class ModelManager:
    """Loaded models by id; ``lease`` loads on demand and pins the model while in use."""

    def __init__(
        self,
        keep_alive: Callable[[str], float | None],
        loader: Callable[[str], Loadable],
        *,
        memory_budget: int | None = None,
        clock: Clock = monotonic,
    ) -> None:
        self.keep_alive = keep_alive  # model id -> seconds (negative: forever); None: no such model
        self._loader = loader
        self.memory_budget = memory_budget
        self.clock = clock
        self.slots: dict[str, Slot] = {}
        self._loading: dict[str, asyncio.Task[Loadable]] = {}
        self._next_keep_alive: dict[str, float] = {}  # set while not loaded: applies when it loads
        self._sweeper: asyncio.Task[None] | None = None

    def used_bytes(self) -> int:
        return sum(s.model.memory_bytes for s in self.slots.values())

    @asynccontextmanager
    async def lease(self, model_id: str) -> AsyncIterator[Loadable]:
        slot = await self._acquire(model_id)  # with the lease taken
        try:
            yield slot.model
        finally:
            slot.leases -= 1
            slot.released = self.clock()

    async def _acquire(self, model_id: str) -> Slot:
        slot = self.slots.get(model_id)
        if slot is not None:
            slot.leases += 1
            return slot
        keep_alive = self.keep_alive(model_id)
        if keep_alive is None:
            raise ModelNotFound(f"The model `{model_id}` does not exist.", param="model")
        task = self._loading.get(model_id)
        if task is None:
            task = asyncio.create_task(asyncio.to_thread(self._loader, model_id))
            self._loading[model_id] = task
        try:
            model = await asyncio.shield(task)
        except ModelFileError as exc:
            raise ModelUnavailable(f"model {model_id!r} cannot be loaded: {exc}") from exc
        except EngineError as exc:
            raise Overloaded(f"model {model_id!r} could not be loaded: {exc}", retry_after=5) from exc
        finally:
            if task.done():
                self._loading.pop(model_id, None)
        slot = self.slots.get(model_id)
        if slot is not None:
            slot.leases += 1
            return slot
        # The first of the waiters installs it, leased before any await so that no sweep or unload
        # request sees it idle before it served anyone.
        keep_alive = self._next_keep_alive.pop(model_id, keep_alive)
        slot = self.slots[model_id] = Slot(model, keep_alive, self.clock(), leases=1)
        self._start_sweeper()
        await self._fit(model_id)
        return slot

    async def _fit(self, newcomer: str) -> None:
        """Unload least recently used idle models until the budget holds; if it cannot, the
        newcomer is unloaded again and the request gets a 503."""
        if self.memory_budget is None:
            return
        while self.used_bytes() > self.memory_budget:
            idle = [(s.idle_since(), k) for k, s in self.slots.items() if k != newcomer and s.idle()]
            if not idle:
                slot = self.slots[newcomer]
                slot.leases -= 1
                if slot.idle():  # waiters of the same load may hold it already: they keep it
                    await self.unload(newcomer)
                raise Overloaded(
                    f"model {newcomer!r} does not fit in the memory budget while other models are busy",
                    retry_after=10,
                )
            await self.unload(min(idle)[1])

    async def unload(self, model_id: str) -> None:
        slot = self.slots.pop(model_id, None)
        if slot is not None:
            log.info("unloading model %s", model_id)
            await asyncio.to_thread(slot.model.close)

    def set_keep_alive(self, model_id: str, seconds: float) -> None:
        """A request's keep-alive for its model (negative: forever): it holds from now on, until
        another request sets one or the model unloads."""
        if self.keep_alive(model_id) is None:
            return  # no such model: the request itself gets the 404
        slot = self.slots.get(model_id)
        if slot is not None:
            slot.keep_alive = seconds
        else:
            self._next_keep_alive[model_id] = seconds

    async def unload_when_idle(self, model_id: str) -> None:
        """Unload now if no request uses the model, else as soon as the last one ends (they finish
        first); a load under way ends in an unload after its first request."""
        slot = self.slots.get(model_id)
        if slot is None:
            if model_id in self._loading:
                self._next_keep_alive[model_id] = 0.0
            else:
                self._next_keep_alive.pop(model_id, None)
            return
        slot.keep_alive = 0.0
        if slot.idle():
            await self.unload(model_id)

    def expired(self, now: float) -> list[str]:
        return [k for k, s in self.slots.items() if (left := s.expires_in(now)) is not None and left <= 0]

    def _start_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep())

    async def _sweep(self) -> None:
        while self.slots:
            await asyncio.sleep(SWEEP_SECONDS)
            await self.unload_expired()

    async def unload_expired(self) -> None:
        """Unload the models whose keep-alive has run out (the sweeper, every ``SWEEP_SECONDS``)."""
        # One at a time, checked again after each unload: a request may lease a model meanwhile.
        while expired := self.expired(self.clock()):
            await self.unload(expired[0])

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for slot in self.slots.values():
            slot.model.close()
        self.slots.clear()
