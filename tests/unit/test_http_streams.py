"""The streaming wire rules of every surface, in process over misbehaving fake backends: a request
moves to another target only before its first byte; after it, a failure is an error event in the API's
own format and the stream never ends as a success would; a client that hangs up cancels the backend.
(The same rules through real servers and the real model: tests/e2e.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lumbung.errors import RateLimited, UpstreamError
from tests.support.fake_backend import Crash, Fail, FakeBackend, Hang
from tests.support.inprocess import MODEL, InProcess, in_process, route
from tests.support.surfaces import SURFACES, Surface

surfaces = pytest.mark.parametrize("surface", SURFACES, ids=[s.name for s in SURFACES])


async def stream_of(lb: InProcess, surface: Surface, model: str) -> tuple[int, list[dict[str, object]]]:
    response = await lb.client.post(
        surface.path, json=surface.body(model, stream=True), headers=surface.headers
    )
    return response.status_code, surface.parse(response.content)


async def until(condition: object) -> None:
    """Let the loop run until ``condition()`` holds (a state to reach, never a duration)."""
    for _ in range(10_000):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition was never reached")


def two_providers() -> dict[str, FakeBackend]:
    return {"a": FakeBackend("a"), "b": FakeBackend("b")}


@surfaces
async def test_a_whole_stream_ends_as_a_success(tmp_path: Path, surface: Surface) -> None:
    async with in_process(tmp_path) as lb:
        status, events = await stream_of(lb, surface, MODEL)
    assert status == 200
    assert surface.is_done(events)
    assert not any(surface.is_error_event(e) for e in events)
    assert lb.local.open_streams == 0


@surfaces
async def test_a_failure_before_the_first_chunk_is_a_plain_http_error(
    tmp_path: Path, surface: Surface
) -> None:
    async with in_process(tmp_path) as lb:
        lb.local.then(Fail(UpstreamError("the backend broke")))
        response = await lb.client.post(
            surface.path, json=surface.body(MODEL, stream=True), headers=surface.headers
        )
    assert response.status_code == 502
    assert surface.is_error_envelope(response.json())
    assert lb.local.open_streams == 0


@surfaces
async def test_a_failure_before_the_first_byte_moves_to_the_next_target(
    tmp_path: Path, surface: Surface
) -> None:
    async with in_process(tmp_path, providers=two_providers(), routes=[route("r", ["a"], ["b"])]) as lb:
        lb.fake("a").then(Fail(UpstreamError("a broke")))
        status, events = await stream_of(lb, surface, "r")
        a, b = lb.fake("a"), lb.fake("b")
    assert status == 200
    assert surface.is_done(events)
    assert (a.opened, b.opened) == (1, 1)
    assert a.open_streams == b.open_streams == 0


@surfaces
async def test_a_rate_limited_target_is_skipped_before_the_first_byte(
    tmp_path: Path, surface: Surface
) -> None:
    async with in_process(tmp_path, providers=two_providers(), routes=[route("r", ["a"], ["b"])]) as lb:
        lb.fake("a").then(Fail(RateLimited("slow down", retry_after=30)))
        status, events = await stream_of(lb, surface, "r")
        assert status == 200 and surface.is_done(events)
        status, events = await stream_of(lb, surface, "r")  # a cools down: b answers without asking a
        assert status == 200 and surface.is_done(events)
        assert (lb.fake("a").opened, lb.fake("b").opened) == (1, 2)


@surfaces
async def test_a_failure_after_the_first_byte_is_an_error_event_and_never_retried(
    tmp_path: Path, surface: Surface
) -> None:
    async with in_process(tmp_path, providers=two_providers(), routes=[route("r", ["a"], ["b"])]) as lb:
        lb.fake("a").then(Fail(UpstreamError("a broke midway"), after=2))
        status, events = await stream_of(lb, surface, "r")
        a, b = lb.fake("a"), lb.fake("b")
    assert status == 200
    assert surface.is_error_event(events[-1])
    assert not surface.is_done(events)
    assert not surface.is_error_event(events[0])  # the answer started: text came before the error
    assert b.opened == 0  # committed to a once its first chunk went out
    assert a.open_streams == 0


@surfaces
async def test_a_crash_inside_the_stream_is_an_error_event_not_a_broken_connection(
    tmp_path: Path, surface: Surface
) -> None:
    async with in_process(tmp_path) as lb:
        lb.local.then(Crash(after=1))
        status, events = await stream_of(lb, surface, MODEL)
    assert status == 200
    assert surface.is_error_event(events[-1])
    assert not surface.is_done(events)


@surfaces
async def test_a_stream_that_ends_without_a_finish_is_an_error_event(
    tmp_path: Path, surface: Surface
) -> None:
    async with in_process(tmp_path, providers={"a": FakeBackend("a")}, routes=[route("r", ["a"])]) as lb:
        lb.fake("a").then("truncated")
        status, events = await stream_of(lb, surface, "r")
    assert status == 200
    assert surface.is_error_event(events[-1])
    assert not surface.is_done(events)


@surfaces
async def test_a_client_hang_up_mid_stream_closes_the_backend_stream(
    tmp_path: Path, surface: Surface
) -> None:
    async with in_process(tmp_path) as lb:
        lb.local.then(Hang(after=1))
        async with lb.client.stream(
            "POST", surface.path, json=surface.body(MODEL, stream=True), headers=surface.headers
        ) as response:
            assert response.status_code == 200
            await until(lambda: lb.local.hanging == 1)
        # Leaving the block closed the response: the client is gone.
        await until(lambda: lb.local.open_streams == 0)
        assert lb.local.hanging == 0


@surfaces
async def test_a_client_hang_up_before_the_first_byte_closes_the_backend_stream(
    tmp_path: Path, surface: Surface
) -> None:
    async with in_process(tmp_path) as lb:
        lb.local.then(Hang())
        for stream in (True, False):
            task = asyncio.ensure_future(
                lb.client.post(surface.path, json=surface.body(MODEL, stream=stream), headers=surface.headers)
            )
            await until(lambda: lb.local.hanging == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await until(lambda: lb.local.open_streams == 0)
            lb.local.then(Hang())


@surfaces
async def test_a_whole_answer_fails_over_even_after_the_first_chunk(tmp_path: Path, surface: Surface) -> None:
    async with in_process(tmp_path, providers=two_providers(), routes=[route("r", ["a"], ["b"])]) as lb:
        lb.fake("a").then(Fail(UpstreamError("a broke midway"), after=2))
        response = await lb.client.post(
            surface.path, json=surface.body("r", stream=False), headers=surface.headers
        )
        assert response.status_code == 200, response.text
        assert not surface.is_error_envelope(response.json())
        assert (lb.fake("a").opened, lb.fake("b").opened) == (1, 1)


@surfaces
async def test_every_target_failing_is_one_error_in_the_apis_envelope(
    tmp_path: Path, surface: Surface
) -> None:
    async with in_process(tmp_path, providers=two_providers(), routes=[route("r", ["a", "b"])]) as lb:
        for name in ("a", "b"):
            lb.fake(name).default = Fail(UpstreamError(f"{name} is down"))
        for stream in (True, False):
            response = await lb.client.post(
                surface.path, json=surface.body("r", stream=stream), headers=surface.headers
            )
            assert response.status_code == 502
            assert surface.is_error_envelope(response.json())


MULTI = [s for s in SURFACES if s.name in ("openai.chat", "openai.completions")]


@pytest.mark.parametrize("surface", MULTI, ids=[s.name for s in MULTI])
async def test_one_failing_choice_of_several_ends_the_stream_and_closes_the_others(
    tmp_path: Path, surface: Surface
) -> None:
    async with in_process(tmp_path) as lb:
        lb.local.then(Hang(after=1), Fail(UpstreamError("choice 1 broke"), after=1))
        body = {**surface.body(MODEL, stream=True), "n": 2}
        response = await lb.client.post(surface.path, json=body, headers=surface.headers)
        events = surface.parse(response.content)
        assert response.status_code == 200
        assert surface.is_error_event(events[-1]) and not surface.is_done(events)
        await until(lambda: lb.local.open_streams == 0)  # the hanging choice was stopped too


@pytest.mark.parametrize("surface", MULTI, ids=[s.name for s in MULTI])
async def test_one_failing_choice_of_several_fails_a_whole_answer_and_stops_the_others(
    tmp_path: Path, surface: Surface
) -> None:
    async with in_process(tmp_path) as lb:
        lb.local.then(Hang(after=1), Fail(UpstreamError("choice 1 broke"), after=1))
        body = {**surface.body(MODEL, stream=False), "n": 2}
        response = await lb.client.post(surface.path, json=body, headers=surface.headers)
        assert response.status_code == 502 and surface.is_error_envelope(response.json())
        await until(lambda: lb.local.open_streams == 0)


@pytest.mark.parametrize("surface", MULTI, ids=[s.name for s in MULTI])
async def test_several_choices_stream_interleaved_and_end_once(tmp_path: Path, surface: Surface) -> None:
    async with in_process(tmp_path) as lb:
        body = {**surface.body(MODEL, stream=True), "n": 3}
        response = await lb.client.post(surface.path, json=body, headers=surface.headers)
        events = surface.parse(response.content)
        assert response.status_code == 200 and surface.is_done(events)
        assert sum(e["data"] == "[DONE]" for e in events) == 1
        finished = [
            c["index"]
            for e in events
            if isinstance(e["data"], dict)
            for c in e["data"].get("choices", [])
            if c.get("finish_reason")
        ]
        assert sorted(finished) == [0, 1, 2]
        assert lb.local.opened == 3 and lb.local.open_streams == 0
