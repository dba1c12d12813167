"""A real ``lumbung serve`` killed with ``kill -9`` under load: its database opens cleanly, holds one
row for each request it wrote and no other, and lacks at most the documented window (the rows queued
since the last write: about ``ledger_batch_rows``, plus the batch being written, plus the requests in
flight). A graceful stop writes every row. Over a fake upstream: no model needed."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lumbung.state.db import sqlite_url
from tests.support.fake_upstream import FakeUpstream
from tests.support.ledger import ledger_rows
from tests.support.server import ServerProcess

BATCH = 20
WORKERS = 8


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    up = FakeUpstream("up", words=3).start()
    yield up
    up.stop()


def config(upstream: FakeUpstream) -> dict[str, Any]:
    return {
        "serve_default_model": False,
        "providers": [{"name": "up", "kind": "openai", "base_url": upstream.base_url, "jurisdiction": "ID"}],
        "routes": [{"name": "r", "tiers": [["up/m"]]}],
        "ledger_flush_ms": 100,
        "ledger_batch_rows": BATCH,
    }


async def load(base_url: str, done: list[str], sent: list[str], stop: asyncio.Event) -> None:
    """``WORKERS`` clients asking one after another until ``stop``; ids of the answers received whole."""

    async def worker(w: int, client: httpx.AsyncClient) -> None:
        n = 0
        while not stop.is_set():
            rid = f"w{w}-{n}"
            n += 1
            sent.append(rid)
            body = {"model": "r", "messages": [{"role": "user", "content": "hi"}], "stream": n % 2 == 0}
            try:
                response = await client.post("/v1/chat/completions", json=body, headers={"x-request-id": rid})
            except httpx.HTTPError:
                return  # the server is gone
            if response.status_code == 200:
                done.append(rid)

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        await asyncio.gather(*(worker(w, client) for w in range(WORKERS)))


async def kill_under_load(proc: ServerProcess, enough: int) -> tuple[list[str], list[str]]:
    done: list[str] = []
    sent: list[str] = []
    stop = asyncio.Event()
    traffic = asyncio.ensure_future(load(proc.base_url, done, sent, stop))
    while len(done) < enough:
        await asyncio.sleep(0.01)
        assert not traffic.done(), proc.logs()
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGKILL)  # mid-load: requests in flight, rows queued
    proc.proc.wait()
    stop.set()
    await traffic
    return done, sent


async def test_kill_9_under_load_loses_at_most_the_documented_window(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    proc = ServerProcess(tmp_path, config=config(upstream)).start()
    try:
        done, sent = await kill_under_load(proc, enough=400)
    finally:
        proc.stop()
    path = tmp_path / "lumbung.db"
    with sqlite3.connect(path) as db:  # opens cleanly, WAL replayed
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = await ledger_rows(sqlite_url(tmp_path))
    ids = [r["request_id"] for r in rows]
    assert len(ids) == len(set(ids)), "a request written twice"
    assert set(ids) <= set(sent), "a row for a request never sent"
    assert all(r["outcome"] == "ok" and r["completion_tokens"] > 0 for r in rows if r["request_id"] in done)
    lost = set(done) - set(ids)
    # The queued rows (<= BATCH before a write starts), the batch being written (<= BATCH), and the
    # rows of requests ending while it is written (at most one per client).
    assert len(lost) <= 2 * BATCH + WORKERS, (len(lost), len(done), len(rows))

    # The same database serves again; a graceful stop writes every row.
    again = ServerProcess(tmp_path, config=config(upstream)).start()
    try:
        async with httpx.AsyncClient(base_url=again.base_url) as client:
            body = {"model": "r", "messages": [{"role": "user", "content": "hi"}]}
            for n in range(3):
                response = await client.post(
                    "/v1/chat/completions", json=body, headers={"x-request-id": f"after-{n}"}
                )
                assert response.status_code == 200
    finally:
        again.stop()  # SIGTERM: graceful
    after = [r["request_id"] for r in await ledger_rows(sqlite_url(tmp_path))]
    assert after[len(rows) :] == ["after-0", "after-1", "after-2"]
