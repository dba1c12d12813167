"""The idle watchdog on a fake clock: silence counts only while the stream waits on its upstream, the
deadline holds regardless, and a cancel it did not cause is not taken for a timeout."""

from __future__ import annotations

import asyncio

from lumbung.clock import FakeClock
from lumbung.gateway.watchdog import IdleWatchdog


async def waiter(dog: IdleWatchdog, gate: asyncio.Event) -> str:
    dog.waiting()
    try:
        await gate.wait()
    except asyncio.CancelledError:
        return "timed out" if dog.claim(asyncio.current_task()) else "cancelled"
    finally:
        dog.done()
    return "arrived"


async def test_silence_while_waiting_fires_after_idle_seconds() -> None:
    clock = FakeClock()
    dog = IdleWatchdog(idle=5.0, end=clock() + 100, clock=clock)
    task = asyncio.ensure_future(waiter(dog, asyncio.Event()))
    await asyncio.sleep(0)
    clock.advance(4.9)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(0.2)
    assert await task == "timed out"
    dog.close()


async def test_time_not_spent_waiting_does_not_count() -> None:
    clock = FakeClock()
    dog = IdleWatchdog(idle=5.0, end=clock() + 100, clock=clock)
    clock.advance(60)  # the consumer was busy (a slow client): nothing was awaited
    gate = asyncio.Event()
    task = asyncio.ensure_future(waiter(dog, gate))
    await asyncio.sleep(0)
    clock.advance(4)
    gate.set()
    assert await task == "arrived"
    assert not dog.fired
    dog.close()
    assert clock.pending == 0


async def test_the_deadline_fires_even_while_items_keep_arriving() -> None:
    clock = FakeClock()
    dog = IdleWatchdog(idle=5.0, end=clock() + 12, clock=clock)
    for _ in range(2):  # an item every 4 s: never idle for 5
        gate = asyncio.Event()
        task = asyncio.ensure_future(waiter(dog, gate))
        await asyncio.sleep(0)
        clock.advance(4)
        gate.set()
        assert await task == "arrived"
    task = asyncio.ensure_future(waiter(dog, asyncio.Event()))
    await asyncio.sleep(0)
    clock.advance(4)  # 12 s: the answer's end
    assert await task == "timed out"
    dog.close()


async def test_a_cancel_it_did_not_cause_is_passed_on() -> None:
    clock = FakeClock()
    dog = IdleWatchdog(idle=5.0, end=clock() + 100, clock=clock)
    task = asyncio.ensure_future(waiter(dog, asyncio.Event()))
    await asyncio.sleep(0)
    task.cancel()
    assert await task == "cancelled"
    dog.close()
