"""The usage ledger: exactly one row per accepted request, whatever happened to it, with the right
outcome, targets and tokens. Hundreds of requests over every surface (OpenAI chat, completions and
Responses, Anthropic, Ollama chat and generate, the OpenAI pass-through), streamed and whole, with
client hang-ups, cut-off providers, hangs, failovers and answers broken halfway; in process over fake
backends and fake upstreams, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lumbung.errors import ProviderCutOff, UpstreamError
from lumbung.record import SINK_DELAY
from lumbung.state.db import sqlite_url
from tests.support.fake_backend import Fail, FakeBackend, Hang
from tests.support.fake_upstream import FakeUpstream
from tests.support.inprocess import InProcess, in_process, route
from tests.support.ledger import ledger_rows
from tests.support.surfaces import OPENAI_CHAT, SURFACES, Surface

# What can happen to one request, and the outcome its row must show.
TYPED_FAULTS = {
    "ok": "ok",
    "failover": "failed_over",
    "cut_off_failover": "failed_over",
    "cut_off": "cut_off",
    "hang_failover": "failed_over",
    "broken_halfway": "error",
    "hang_up_before": "hang_up",
    "hang_up_halfway": "hang_up",
}
PASS_FAULTS = {
    "ok": "ok",
    "failover": "failed_over",
    "cut_off_failover": "failed_over",
    "broken_halfway": "error",
    "hang_up_before": "hang_up",
}


async def until(condition: object) -> None:
    """Let the loop run until ``condition()`` holds (a state to reach, never a duration)."""
    for _ in range(200_000):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition was never reached")


@dataclass
class Sent:
    id: str
    surface: str
    stream: bool
    fault: str
    outcome: str
    usage: tuple[int, int] | None = None  # (prompt, completion) the client was told, when it was


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[FakeUpstream, FakeUpstream]]:
    a, b = FakeUpstream("pa", words=4), FakeUpstream("pb", words=4)
    servers = [await a.serve(), await b.serve()]
    yield a, b
    for server in servers:
        server.close()
        await server.wait_closed()


def gateway_of(a: FakeUpstream, b: FakeUpstream) -> dict[str, Any]:
    providers: dict[str, Any] = {
        "a": FakeBackend("a"),
        "b": FakeBackend("b"),
        "s": FakeBackend("s"),
        "pa": a.base_url,
        "pb": b.base_url,
    }
    # Each request stands alone: no breaker opens, the retry budget never runs out.
    steady = {"circuit": {"failures_to_open": 100_000}}
    options = {name: dict(steady) for name in providers}
    options["a"]["timeouts"] = {"first_token": 0.05}
    routes = [
        route("r", ["a"], ["b"], retry_budget=1.0),
        route("slow", ["s"]),
        route("pt", ["pa"], ["pb"], retry_budget=1.0),
    ]
    return {"providers": providers, "provider_options": options, "routes": routes}


def _usage(surface: Surface, body: Any) -> tuple[int, int] | None:
    usage = body.get("usage") if isinstance(body, dict) else None
    if not usage:
        return None
    if "input_tokens" in usage:
        return usage["input_tokens"], usage["output_tokens"]
    return usage["prompt_tokens"], usage["completion_tokens"]


async def send_typed(lb: InProcess, n: int, surface: Surface, stream: bool, fault: str) -> Sent:
    a, b, s = lb.fake("a"), lb.fake("b"), lb.fake("s")
    sent = Sent(f"req-{n}", surface.name, stream, fault, TYPED_FAULTS[fault])
    if fault == "broken_halfway" and not stream:
        sent.outcome = "failed_over"  # a whole answer may move on at any point before it is done
    model = "slow" if fault.startswith("hang_up") else "r"
    if fault == "failover":
        a.then(Fail(UpstreamError("a broke")))
    elif fault == "cut_off_failover":
        a.then(Fail(ProviderCutOff("a: not available in your region")))
    elif fault == "cut_off":
        a.then(Fail(ProviderCutOff("a: region")))
        b.then(Fail(ProviderCutOff("b: region")))
    elif fault == "hang_failover":
        a.then(Hang())
    elif fault == "broken_halfway":
        a.then(Fail(UpstreamError("a broke halfway"), after=2))
    elif fault == "hang_up_before":
        s.then(Hang())
    elif fault == "hang_up_halfway":
        s.then(Hang(after=2))
    headers = {**surface.headers, "x-request-id": sent.id}
    body = surface.body(model, stream=stream)
    if fault == "hang_up_halfway" and stream:
        async with lb.client.stream("POST", surface.path, json=body, headers=headers) as response:
            async for _ in response.aiter_bytes():
                break  # the first piece of the answer came: hang up
        return sent
    if fault.startswith("hang_up"):
        task = asyncio.ensure_future(lb.client.post(surface.path, json=body, headers=headers))
        await until(lambda: s.hanging == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: s.hanging == 0)
        return sent
    response = await lb.client.post(surface.path, json=body, headers=headers)
    if sent.outcome in ("ok", "failed_over"):
        assert response.status_code == 200, response.text
        sent.usage = (2, 3)  # the fake backend's usage of a whole answer
        if not stream:
            assert _usage(surface, response.json()) in (None, (2, 3))
    return sent


PASS_MODES = {
    "ok": "ok",
    "failover": "500",
    "cut_off_failover": "403_region",
    "broken_halfway": "reset_after",
    "hang_up_before": "hang_before_headers",
}


async def send_passed(
    lb: InProcess, n: int, ups: tuple[FakeUpstream, FakeUpstream], stream: bool, fault: str
) -> Sent:
    a, b = ups
    sent = Sent(f"req-{n}", "openai.passthrough", stream, fault, PASS_FAULTS[fault])
    a.set(PASS_MODES[fault], k=2, retry_after=None)
    b.set("ok")
    body = OPENAI_CHAT.body("pt", stream=stream)
    if stream:
        body["stream_options"] = {"include_usage": True}
    headers = {"x-request-id": sent.id}
    if fault == "hang_up_before":
        seen_before, gone_before = len(a.seen), len(a.disconnects)
        task = asyncio.ensure_future(lb.client.post(OPENAI_CHAT.path, json=body, headers=headers))
        await until(lambda: len(a.seen) > seen_before)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: len(a.disconnects) > gone_before)
        return sent
    response = await lb.client.post(OPENAI_CHAT.path, json=body, headers=headers)
    if sent.outcome in ("ok", "failed_over"):
        assert response.status_code == 200, response.text
        if stream:
            events = OPENAI_CHAT.parse(response.content)
            usages = [
                e["data"]["usage"] for e in events if isinstance(e["data"], dict) and e["data"].get("usage")
            ]
            sent.usage = (usages[-1]["prompt_tokens"], usages[-1]["completion_tokens"])
        else:
            sent.usage = _usage(OPENAI_CHAT, response.json())
    return sent


async def traffic(lb: InProcess, ups: tuple[FakeUpstream, FakeUpstream], count: int, seed: int) -> list[Sent]:
    """``count`` requests, one after another (so each fault hits the request it was meant for), over
    random surfaces, modes and faults."""
    rng = random.Random(seed)
    sent: list[Sent] = []
    for n in range(count):
        stream = rng.random() < 0.5
        if rng.random() < 0.2:
            fault = rng.choice(list(PASS_FAULTS))
            if fault == "broken_halfway" and not stream:
                fault = "failover"  # a whole answer is one piece: nothing arrives halfway
            sent.append(await send_passed(lb, n, ups, stream, fault))
        else:
            surface = rng.choice(SURFACES)
            sent.append(await send_typed(lb, n, surface, stream, rng.choice(list(TYPED_FAULTS))))
        for target in lb.gateway.targets():  # the next request finds every provider as new
            target.provider.clear_cut_off()
    return sent


def check_rows(sent: list[Sent], rows: list[dict[str, Any]]) -> None:
    by_id: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_id.setdefault(row["request_id"], []).append(row)
    assert sorted(by_id) == sorted(s.id for s in sent)
    for s in sent:
        [row] = by_id[s.id]  # exactly one
        where = f"{s.id} {s.surface} stream={s.stream} {s.fault}: {row}"
        assert row["outcome"] == s.outcome, where
        # ``stream``: the client asked for a stream (a refusal before its first byte may show either).
        assert not row["stream"] or s.stream, where
        if s.outcome in ("ok", "failed_over"):
            assert row["stream"] == s.stream, where
        passed = s.surface == "openai.passthrough"
        first, second = ("pa/m", "pb/m") if passed else ("a/m", "b/m")
        if s.outcome == "ok":
            assert (row["providers"], row["target"], row["error"]) == (first, first, None), where
        elif s.outcome == "failed_over":
            assert (row["providers"], row["target"]) == (f"{first},{second}", second), where
        elif s.outcome == "cut_off":
            assert (row["providers"], row["target"], row["status"]) == (f"{first},{second}", None, 502), where
        elif s.outcome == "hang_up":
            assert row["error"] == "client_disconnected" and row["target"] is None, where
        else:
            assert row["error"] and row["target"] is None, where
        if s.usage is not None:
            assert (row["prompt_tokens"], row["completion_tokens"]) == s.usage, where
        if s.outcome in ("ok", "failed_over"):
            assert row["ttft_ms"] is not None and row["latency_ms"] >= row["ttft_ms"], where
        assert row["route"] == ("pt" if passed else "slow" if s.fault.startswith("hang_up") else "r"), where
    outcomes = {s.outcome for s in sent}
    assert outcomes == {"ok", "failed_over", "cut_off", "error", "hang_up"}


@pytest.mark.parametrize("sink_delay", [0.0, SINK_DELAY, 3600.0], ids=["next-turn", "serve", "at-shutdown"])
async def test_every_request_leaves_exactly_one_row_with_its_outcome(
    tmp_path: Path, upstreams: tuple[FakeUpstream, FakeUpstream], sink_delay: float
) -> None:
    """Whenever the records' sinks run: on the next turn, ``lumbung serve``'s moment later, or only when
    the server stops (the rows of requests that ended just before a shutdown)."""
    options = gateway_of(*upstreams)
    async with in_process(tmp_path, ledger_batch_rows=17, sink_delay=sink_delay, **options) as lb:
        sent = await traffic(lb, upstreams, 300, seed=16)
    check_rows(sent, await ledger_rows(sqlite_url(tmp_path)))


async def test_the_same_ledger_on_a_real_postgresql(
    tmp_path: Path, upstreams: tuple[FakeUpstream, FakeUpstream], postgres_url: str
) -> None:
    options = gateway_of(*upstreams)
    async with in_process(tmp_path, database_url=postgres_url, ledger_batch_rows=17, **options) as lb:
        sent = await traffic(lb, upstreams, 150, seed=15)
    check_rows(sent, await ledger_rows(postgres_url))
    assert not (tmp_path / "lumbung.db").exists()


async def test_concurrent_requests_with_random_faults_and_hang_ups_leave_one_row_each(tmp_path: Path) -> None:
    """The same, all at once: which request meets which fault is left to the scheduler, so the rows
    are checked against what each client saw, and every attempt the backends opened is on a row."""
    rng = random.Random(21)
    a, b = FakeBackend("a"), FakeBackend("b")
    # a's calls fail before the first token, hang (its first-token timeout moves on), or answer.
    a.then(*[rng.choice(["ok", "ok", Fail(UpstreamError("a broke")), Hang()]) for _ in range(400)])
    steady = {"circuit": {"failures_to_open": 100_000}}
    options = {"a": {**steady, "timeouts": {"first_token": 0.05}}, "b": steady}
    routes = [route("r", ["a"], ["b"], retry_budget=1.0)]
    async with in_process(
        tmp_path, providers={"a": a, "b": b}, provider_options=options, routes=routes, ledger_batch_rows=9
    ) as lb:

        async def one(n: int) -> tuple[str, str]:
            surface = rng.choice(SURFACES)
            stream = rng.random() < 0.5
            headers = {**surface.headers, "x-request-id": f"c-{n}"}
            call = asyncio.ensure_future(
                lb.client.post(surface.path, json=surface.body("r", stream=stream), headers=headers)
            )
            if rng.random() < 0.2:  # this client hangs up at some point of the exchange
                for _ in range(rng.randrange(1, 60)):
                    await asyncio.sleep(0)
                call.cancel()
            try:
                response = await call
            except asyncio.CancelledError:
                return f"c-{n}", "left"
            assert response.status_code == 200, response.text
            return f"c-{n}", "answered"

        seen = dict(await asyncio.gather(*(one(n) for n in range(240))))
        await until(lambda: a.opened == a.closed and b.opened == b.closed)
    rows = await ledger_rows(sqlite_url(tmp_path))
    by_id = {r["request_id"]: r for r in rows}
    assert len(rows) == len(by_id) == len(seen) == 240
    for rid, what in seen.items():
        row = by_id[rid]
        if what == "answered":
            assert row["outcome"] in ("ok", "failed_over") and row["target"] in ("a/m", "b/m"), row
            assert (row["prompt_tokens"], row["completion_tokens"]) == (2, 3), row
        else:  # gone before the answer, or just as its last bytes went out
            assert row["outcome"] in ("hang_up", "ok", "failed_over"), row
    # Every call a backend opened is an attempt on exactly one row.
    assert sum(r["attempts"] for r in rows) == a.opened + b.opened
    assert sum(r["providers"].count("a/m") for r in rows if r["providers"]) == a.opened
    assert {r["outcome"] for r in rows} >= {"ok", "failed_over", "hang_up"}
