"""Model manager: load on first use, keep-alive unload, memory budget with LRU unload, leases.
Keep-alives run on a fake clock: a test moves it on and sweeps, it never waits for them."""

from __future__ import annotations

import asyncio
import time

import pytest

from lumbung.clock import FakeClock
from lumbung.engines.llamacpp import manager as manager_mod
from lumbung.engines.llamacpp.manager import ModelManager
from lumbung.errors import EngineError, ModelFileError, ModelNotFound, ModelUnavailable, Overloaded


class FakeModel:
    """Stands in for a loaded GGUF: it has a size, may be busy, and records being closed."""

    def __init__(self, name: str, size: int, now: float) -> None:
        self.name = name
        self.memory_bytes = size
        self.busy = False
        self.last_used = now
        self.closed = False
        self.close_seconds = 0.0

    def close(self) -> None:
        time.sleep(self.close_seconds)  # on a worker thread: other tasks run meanwhile
        self.closed = True


class Loader:
    def __init__(self, sizes: dict[str, int], clock: FakeClock | None = None) -> None:
        self.sizes = sizes
        self.clock = clock or FakeClock()
        self.loads: list[str] = []
        self.made: list[FakeModel] = []

    def __call__(self, model_id: str) -> FakeModel:
        self.loads.append(model_id)
        if self.sizes[model_id] == -2:
            raise ModelFileError(f"{model_id}.gguf: not a valid GGUF file: bad magic")
        if self.sizes[model_id] < 0:
            raise EngineError("llama.cpp could not create a context")
        time.sleep(0.01)  # loading takes a while: concurrent requests must share one load
        model = FakeModel(model_id, self.sizes[model_id], self.clock())
        self.made.append(model)
        return model


async def test_concurrent_first_requests_share_one_load() -> None:
    loader = Loader({"a": 1})
    mgr = ModelManager({"a": -1}.get, loader)

    async def use() -> object:
        async with mgr.lease("a") as m:
            return m

    models = await asyncio.gather(*(use() for _ in range(5)))
    assert loader.loads == ["a"] and len({id(m) for m in models}) == 1
    mgr.close()
    assert loader.made[0].closed


async def test_unknown_model_and_failed_load() -> None:
    mgr = ModelManager({"bad": -1}.get, Loader({"bad": -1}))
    with pytest.raises(ModelNotFound):
        async with mgr.lease("nope"):
            pass
    with pytest.raises(Overloaded) as err:
        async with mgr.lease("bad"):
            pass
    assert err.value.retry_after and err.value.status == 503


async def test_a_broken_model_file_is_a_permanent_error_every_time() -> None:
    loader = Loader({"bad": -2})
    mgr = ModelManager({"bad": -1}.get, loader)
    for _ in range(2):  # each request looks again: a file put right is served without a restart
        with pytest.raises(ModelUnavailable) as err:
            async with mgr.lease("bad"):
                pass
        assert err.value.status == 500 and err.value.retry_after is None
        assert "bad.gguf" in err.value.message and "bad magic" in err.value.message
    assert loader.loads == ["bad", "bad"]


async def test_idle_model_unloads_after_keep_alive_but_not_while_leased() -> None:
    clock = FakeClock()
    loader = Loader({"a": 1, "b": 1}, clock)
    mgr = ModelManager({"a": 0.05, "b": -1}.get, loader, clock=clock)
    async with mgr.lease("b"):
        pass
    async with mgr.lease("a"):
        clock.advance(0.2)  # leased: kept however long it runs
        await mgr.unload_expired()
        assert "a" in mgr.slots
    a = mgr.slots["a"].model
    a.busy = True  # a request still queued in its engine
    clock.advance(0.2)
    await mgr.unload_expired()
    assert "a" in mgr.slots
    a.busy = False
    a.last_used = clock()
    clock.advance(0.04)
    await mgr.unload_expired()
    assert "a" in mgr.slots  # idle for less than its keep-alive
    clock.advance(0.02)
    await mgr.unload_expired()
    assert "a" not in mgr.slots and loader.made[1].closed
    assert "b" in mgr.slots  # keep_alive < 0: forever
    async with mgr.lease("a"):  # and a later request loads it again
        pass
    assert loader.loads == ["b", "a", "a"]
    mgr.close()


async def test_memory_budget_unloads_least_recently_used_idle_model() -> None:
    loader = Loader({"a": 40, "b": 40, "c": 40})
    mgr = ModelManager({"a": -1, "b": -1, "c": -1}.get, loader, memory_budget=100)
    async with mgr.lease("a"):
        pass
    async with mgr.lease("b"):
        pass
    async with mgr.lease("a"):  # a is now the more recently used
        pass
    async with mgr.lease("c"):
        assert set(mgr.slots) == {"a", "c"} and mgr.used_bytes() == 80
    mgr.close()


async def test_a_model_that_cannot_fit_beside_busy_ones_is_refused() -> None:
    loader = Loader({"a": 60, "b": 60})
    mgr = ModelManager({"a": -1, "b": -1}.get, loader, memory_budget=100)
    async with mgr.lease("a"):
        with pytest.raises(Overloaded) as err:
            async with mgr.lease("b"):
                pass
        assert err.value.retry_after
        assert set(mgr.slots) == {"a"} and loader.made[1].closed
    mgr.close()


async def test_a_requests_keep_alive_holds_for_the_model_from_then_on() -> None:
    clock = FakeClock()
    loader = Loader({"a": 1}, clock)
    mgr = ModelManager({"a": 0.05}.get, loader, clock=clock)
    mgr.set_keep_alive("a", -1)  # before it loads: applies when it does
    async with mgr.lease("a"):
        pass
    assert mgr.slots["a"].keep_alive == -1 and mgr.slots["a"].expires_in(clock()) is None
    clock.advance(0.1)
    await mgr.unload_expired()
    assert "a" in mgr.slots  # kept past the configured 0.05 s
    mgr.set_keep_alive("a", 0.02)
    async with mgr.lease("a"):
        pass
    clock.advance(0.02)
    await mgr.unload_expired()
    assert "a" not in mgr.slots and loader.made[0].closed
    async with mgr.lease("a"):  # a reload starts again from the configured keep-alive
        assert mgr.slots["a"].keep_alive == 0.05
    mgr.set_keep_alive("nope", 10)  # an unknown model: nothing to remember
    assert "nope" not in mgr._next_keep_alive
    mgr.close()


async def test_unload_request_waits_for_requests_in_flight() -> None:
    clock = FakeClock()
    loader = Loader({"a": 1, "b": 1}, clock)
    mgr = ModelManager({"a": -1, "b": -1}.get, loader, clock=clock)
    async with mgr.lease("b"):
        pass
    await mgr.unload_when_idle("b")  # idle: unloaded before the answer
    assert "b" not in mgr.slots and loader.made[0].closed
    async with mgr.lease("a") as a:
        await mgr.unload_when_idle("a")
        clock.advance(1)
        await mgr.unload_expired()
        assert "a" in mgr.slots and not loader.made[1].closed  # in use: it finishes first
        async with mgr.lease("a") as again:  # a request arriving meanwhile is served by it
            assert again is a
    await mgr.unload_expired()  # the sweeper's next round after the last request ended
    assert "a" not in mgr.slots and loader.made[1].closed
    await mgr.unload_when_idle("a")  # not loaded: nothing to do
    mgr.close()


async def test_unload_request_during_a_load_unloads_after_it() -> None:
    clock = FakeClock()
    loader = Loader({"a": 1}, clock)
    mgr = ModelManager({"a": -1}.get, loader, clock=clock)

    async def use() -> None:
        async with mgr.lease("a"):
            pass

    first = asyncio.create_task(use())
    await asyncio.sleep(0)  # the load is under way
    await mgr.unload_when_idle("a")
    await first
    await mgr.unload_expired()
    assert "a" not in mgr.slots and loader.made[0].closed
    mgr.close()


async def test_a_zero_keep_alive_never_unloads_a_model_before_its_first_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(manager_mod, "SWEEP_SECONDS", 0.001)
    loader = Loader({"a": 60, "b": 60})
    mgr = ModelManager({"a": 0.0, "b": -1}.get, loader, memory_budget=100)
    for _ in range(5):
        async with mgr.lease("b") as b:
            b.close_seconds = 0.02  # type: ignore[attr-defined]
        async with mgr.lease("a") as a:  # loading it unloads b first: a must not go meanwhile
            assert not a.closed  # type: ignore[attr-defined]
            await asyncio.sleep(0.005)
            assert not a.closed  # type: ignore[attr-defined]
    mgr.close()
