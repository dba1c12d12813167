"""Every request accounted for: the request boundary (surfaces/boundary.py) closes exactly one record per
request, on every API and on the pass-through path alike, answered or refused, with its status, its
request id, the target that answered and the usage that target reported. In process, over fake
backends and a fake OpenAI upstream."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lumbung.errors import UpstreamError
from lumbung.record import Outbox, RequestRecord
from lumbung.state.db import sqlite_url
from lumbung.surfaces.common import AppState
from tests.support.fake_backend import Fail, FakeBackend, Hang
from tests.support.fake_upstream import FakeUpstream
from tests.support.inprocess import MODEL, InProcess, in_process, route
from tests.support.ledger import ledger_rows
from tests.support.surfaces import ANTHROPIC_MESSAGES, OLLAMA_CHAT, OPENAI_CHAT, SURFACES, Surface

surfaces = pytest.mark.parametrize("surface", SURFACES, ids=[s.name for s in SURFACES])


def records_of(lb: InProcess) -> list[RequestRecord]:
    """The records the boundary closes from now on (a sink, as the usage ledger will be one), as they
    were when closed: a sink sees them then, not later."""
    state: AppState = lb.app.state.lumbung
    closed: list[RequestRecord] = []
    state.sinks.append(lambda rec: closed.append(dataclasses.replace(rec, attempts=list(rec.attempts))))
    return closed


def key_headers(surface: Surface, key: str) -> dict[str, str]:
    if surface is ANTHROPIC_MESSAGES:
        return {**surface.headers, "x-api-key": key}
    return {**surface.headers, "authorization": f"Bearer {key}"}


async def until(condition: object) -> None:
    """Let the loop run until ``condition()`` holds (a state to reach, never a duration)."""
    for _ in range(10_000):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition was never reached")


@surfaces
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_an_answer_leaves_one_record_with_its_target_and_usage(
    tmp_path: Path, surface: Surface, stream: bool
) -> None:
    providers = {"a": FakeBackend("a"), "b": FakeBackend("b")}
    async with in_process(tmp_path, providers=providers, routes=[route("r", ["a"], ["b"])]) as lb:
        closed = records_of(lb)
        lb.fake("a").then(Fail(UpstreamError("a broke")))
        headers = {**surface.headers, "x-request-id": "req-acct"}
        response = await lb.client.post(surface.path, json=surface.body("r", stream=stream), headers=headers)
        assert response.status_code == 200, response.text
    [rec] = closed
    assert (rec.id, rec.path, rec.status, rec.error) == ("req-acct", surface.path, 200, None)
    assert rec.api == surface.name.split(".")[0]
    assert [(a.target, a.error) for a in rec.attempts] == [("a/m", "upstream_error"), ("b/m", None)]
    assert rec.target == "b/m"
    assert (rec.prompt_tokens, rec.completion_tokens) == (2, 3)


@surfaces
async def test_a_refused_request_leaves_one_record_in_the_apis_envelope(
    tmp_path: Path, surface: Surface
) -> None:
    async with in_process(tmp_path, api_keys=["k-user"], max_body_bytes=2048) as lb:
        closed = records_of(lb)
        body = surface.body(MODEL, stream=False)
        missing = await lb.client.post(surface.path, json=body, headers=surface.headers)
        big = await lb.client.post(
            surface.path, json={**body, "pad": "x" * 4096}, headers=key_headers(surface, "k-user")
        )
        bad = await lb.client.post(surface.path, content=b"{", headers=key_headers(surface, "k-user"))
    for response, status in ((missing, 401), (big, 413), (bad, 400)):
        assert response.status_code == status
        assert surface.is_error_envelope(response.json())
        assert response.headers["x-request-id"]
    assert [(r.status, r.attempts) for r in closed] == [(401, []), (413, []), (400, [])]
    assert all(r.error for r in closed) and lb.local.opened == 0


async def test_the_pass_through_path_leaves_the_same_record(tmp_path: Path) -> None:
    a, b = FakeUpstream("a"), FakeUpstream("b")
    servers = [await a.serve(), await b.serve()]
    try:
        a.set("500")
        async with in_process(
            tmp_path, providers={"a": a.base_url, "b": b.base_url}, routes=[route("r", ["a"], ["b"])]
        ) as lb:
            closed = records_of(lb)
            for stream in (True, False):
                body = {**OPENAI_CHAT.body("r", stream=stream), "stream_options": {"include_usage": True}}
                if not stream:
                    del body["stream_options"]
                response = await lb.client.post(
                    OPENAI_CHAT.path, json=body, headers={"x-request-id": f"pt-{stream}"}
                )
                assert response.status_code == 200
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()
    assert [r.id for r in closed] == ["pt-True", "pt-False"]
    for rec in closed:
        assert rec.status == 200 and rec.model == "r" and rec.target == "b/m"
        assert [a.error for a in rec.attempts] == ["upstream_error", None]
        assert rec.usage is not None and rec.usage.completion_tokens > 0
        assert (rec.prompt_tokens, rec.completion_tokens) == (
            rec.usage.prompt_tokens,
            rec.usage.completion_tokens,
        )


async def test_paths_without_an_endpoint_policy_get_a_record_and_a_request_id(tmp_path: Path) -> None:
    async with in_process(tmp_path, api_keys=["k-user"]) as lb:
        closed = records_of(lb)
        health = await lb.client.get("/health")
        unknown = await lb.client.get("/v1/nothing-here")
    assert health.status_code == 200 and unknown.status_code == 404
    assert health.headers["x-request-id"] and unknown.headers["x-request-id"]
    assert [r.status for r in closed] == [200, 404]


async def test_an_operator_route_needs_an_operator_key_at_the_boundary(tmp_path: Path) -> None:
    async with in_process(tmp_path, api_keys=["k-user"], admin_api_keys=["k-admin"]) as lb:
        closed = records_of(lb)
        user = await lb.client.get("/admin/providers", headers={"authorization": "Bearer k-user"})
        admin = await lb.client.get("/admin/providers", headers={"authorization": "Bearer k-admin"})
    assert (user.status_code, admin.status_code) == (403, 200)
    assert [r.status for r in closed] == [403, 200]
    assert closed[1].caller is not None and closed[1].caller.sees_all


@pytest.mark.parametrize("surface", [OPENAI_CHAT, OLLAMA_CHAT], ids=["openai", "ollama"])
async def test_a_client_gone_before_the_answer_leaves_a_record_too(tmp_path: Path, surface: Surface) -> None:
    async with in_process(tmp_path) as lb:
        closed = records_of(lb)
        lb.local.then(Hang())
        task = asyncio.ensure_future(
            lb.client.post(surface.path, json=surface.body(MODEL, stream=False), headers=surface.headers)
        )
        await until(lambda: lb.local.hanging == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: closed)
    [rec] = closed
    assert rec.status == 499 and rec.error
    assert [(a.target, a.error) for a in rec.attempts] == [("local/" + MODEL, "cancelled")]


@pytest.fixture
async def lb_default(tmp_path: Path) -> AsyncIterator[InProcess]:
    async with in_process(tmp_path) as lb:
        yield lb


async def test_a_local_answer_is_accounted_from_the_engines_usage(lb_default: InProcess) -> None:
    closed = records_of(lb_default)
    response = await lb_default.client.post(OPENAI_CHAT.path, json=OPENAI_CHAT.body(MODEL, stream=False))
    assert response.status_code == 200
    [rec] = closed
    assert rec.target == "local/" + MODEL and (rec.prompt_tokens, rec.completion_tokens) == (2, 3)


async def test_embeddings_are_attempts_with_their_usage_on_the_record(tmp_path: Path) -> None:
    providers = {"a": FakeBackend("a"), "b": FakeBackend("b")}
    async with in_process(tmp_path, providers=providers, routes=[route("r", ["a"], ["b"])]) as lb:
        closed = records_of(lb)
        lb.fake("a").embed_error = UpstreamError("a is down")
        response = await lb.client.post("/v1/embeddings", json={"model": "r", "input": ["one", "two"]})
        assert response.status_code == 200, response.text
        assert lb.gateway.resolve("r").tiers[0][0].state.inflight == 0
    [rec] = closed
    assert [(a.target, a.error) for a in rec.attempts] == [("a/m", "upstream_error"), ("b/m", None)]
    assert rec.target == "b/m" and rec.prompt_tokens == 2


async def test_records_close_a_moment_after_their_requests_end_and_at_shutdown(tmp_path: Path) -> None:
    """``lumbung serve`` runs the sinks a moment after a request (record.Outbox): the answer reaches its
    client first. With a delay that never comes in time, the records wait, their latency already
    taken, and the server's shutdown closes them before the ledger writes its last rows."""
    async with in_process(
        tmp_path, providers={"a": FakeBackend("a")}, routes=[route("r", ["a"])], sink_delay=3600
    ) as lb:
        closed = records_of(lb)
        state: AppState = lb.app.state.lumbung
        for _ in range(3):
            response = await lb.client.post(OPENAI_CHAT.path, json=OPENAI_CHAT.body("r", stream=False))
            assert response.status_code == 200
        for _ in range(20):
            await asyncio.sleep(0)
        assert closed == [] and len(state.outbox) == 3
        waiting = list(state.outbox._waiting)
        assert all(rec.latency_ms is not None and not rec.done for rec in waiting)
        latencies = [rec.latency_ms for rec in waiting]
    assert [rec.id for rec in closed] == [rec.id for rec in waiting]
    assert [rec.latency_ms for rec in closed] == latencies  # taken when each ended, not when closed
    assert len(await ledger_rows(sqlite_url(tmp_path))) == 3


async def test_an_outbox_closes_the_records_of_one_moment_together() -> None:
    outbox = Outbox(0.001)
    closed: list[str] = []
    recs = [
        RequestRecord(id=f"req-{n}", method="POST", path="/", sinks=[lambda r: closed.append(r.id)])
        for n in range(3)
    ]
    for rec in recs[:2]:
        rec.stop()
        outbox.put(rec)
    await asyncio.sleep(0)
    assert closed == [] and len(outbox) == 2  # not on the next turn: a moment later
    await until(lambda: len(closed) == 2)
    assert closed == ["req-0", "req-1"]
    outbox.put(recs[2])
    outbox.drain()  # now, and the timer it had set changes nothing later
    assert closed == ["req-0", "req-1", "req-2"] and len(outbox) == 0
    await asyncio.sleep(0.005)
    assert closed == ["req-0", "req-1", "req-2"]


async def test_a_failing_sink_costs_no_other_sink_and_no_other_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    def broken(rec: RequestRecord) -> None:
        raise RuntimeError("the disk is full")

    outbox = Outbox()
    for n in range(2):
        outbox.put(
            RequestRecord(id=f"req-{n}", method="POST", path="/", sinks=[broken, lambda r: seen.append(r.id)])
        )
    await until(lambda: len(seen) == 2)
    assert seen == ["req-0", "req-1"]
    assert [r.getMessage().split(":")[0] for r in caplog.records if r.name == "lumbung.errors"] == [
        "request req-0",
        "request req-1",
    ]


def test_a_records_latency_is_taken_when_it_stops_not_when_it_closes() -> None:
    rec = RequestRecord(id="req-x", method="GET", path="/")
    rec.start -= 1.0
    rec.stop()
    taken = rec.latency_ms
    assert taken is not None and 1000 <= taken < 1500
    rec.start -= 5.0
    rec.stop()
    rec.close()
    assert rec.latency_ms == taken and rec.done


async def test_what_the_sinks_keep_is_read_with_the_requests_that_just_ended(tmp_path: Path) -> None:
    """/metrics and /admin/usage close the waiting records first: a scrape right after an answer
    counts it, however late the records would otherwise close."""
    options = {"providers": {"a": FakeBackend("a")}, "routes": [route("r", ["a"])]}
    async with in_process(tmp_path, sink_delay=3600, **options) as lb:
        for _ in range(2):
            response = await lb.client.post(OPENAI_CHAT.path, json=OPENAI_CHAT.body("r", stream=False))
            assert response.status_code == 200
        metrics = await lb.client.get("/metrics")
        assert "lumbung_requests_total{" in metrics.text
        counted = [
            line
            for line in metrics.text.splitlines()
            if line.startswith("lumbung_requests_total{") and 'outcome="ok"' in line
        ]
        assert sum(float(line.rsplit(" ", 1)[1]) for line in counted) == 2, counted
        response = await lb.client.post(OPENAI_CHAT.path, json=OPENAI_CHAT.body("r", stream=False))
        usage = (await lb.client.get("/admin/usage", params={"by": "route"})).json()
        assert usage["total"]["requests"] == 3, usage
