"""Budgets per virtual key and period: checked before the call, settled after from the ledger's row;
past the budget a request gets 429 ``insufficient_quota`` in its API's own envelope, naming the budget
and when it resets. Spend survives a restart and is shared by instances through the database."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lumbung.accounts.budgets import Budgets, period_bounds
from lumbung.accounts.keys import Caller
from lumbung.accounts.policy import KeyPolicy
from lumbung.accounts.store import KeyStore
from lumbung.errors import QuotaExceeded
from lumbung.state.db import Database, sqlite_url
from tests.support.fake_backend import FakeBackend
from tests.support.inprocess import InProcess, in_process, route
from tests.support.ledger import ledger_rows
from tests.support.surfaces import ANTHROPIC_MESSAGES, OLLAMA_CHAT, OPENAI_CHAT, Surface

PRICES: dict[str, Any] = {"targets": {"a/m": {"input": 1000.0, "output": 2000.0}}}
COST = (2 * 1000 + 3 * 2000) / 1e6  # the fake backend's 2 prompt and 3 completion tokens
TEAM = KeyPolicy(id="key_team", name="team", budget=2.5 * COST, period="day")
FREE = KeyPolicy(id="key_free", name="free")


async def new_key(home: Path, policy: KeyPolicy, **database: Any) -> str:
    """A virtual key made in the key store (as ``lumbung keys create`` does): its secret."""
    db = await Database.at(database.get("database_url"), home).open()
    try:
        _, secret = await KeyStore(db).create(policy)
    finally:
        await db.close()
    return secret


def headers(surface: Surface, key: str) -> dict[str, str]:
    if surface is ANTHROPIC_MESSAGES:
        return {**surface.headers, "x-api-key": key}
    return {**surface.headers, "authorization": f"Bearer {key}"}


def server(home: Path, **options: Any) -> Any:
    return in_process(
        home,
        providers={"a": FakeBackend("a")},
        routes=[route("r", ["a"])],
        prices=PRICES,
        api_keys=["k-config"],  # keys are on: virtual keys are checked too
        **options,
    )


async def ask(lb: InProcess, surface: Surface, key: str) -> Any:
    return await lb.client.post(
        surface.path, json=surface.body("r", stream=False), headers=headers(surface, key)
    )


@pytest.mark.parametrize(
    "surface", [OPENAI_CHAT, ANTHROPIC_MESSAGES, OLLAMA_CHAT], ids=["openai", "anthropic", "ollama"]
)
@pytest.mark.parametrize("sink_delay", [0.0, 3600.0], ids=["next-turn", "records-waiting"])
async def test_past_its_budget_a_key_is_refused_with_insufficient_quota(
    tmp_path: Path, surface: Surface, sink_delay: float
) -> None:
    """Also when the records of its last requests still wait to be closed (record.Outbox): a
    budgeted key's request closes them first, so its spend counts them."""
    team, free = await new_key(tmp_path, TEAM), await new_key(tmp_path, FREE)
    async with server(tmp_path, sink_delay=sink_delay) as lb:
        answered = [await ask(lb, surface, team) for _ in range(3)]  # 0, 1 and 2 costs spent before
        refused = await ask(lb, surface, team)
        other = await ask(lb, surface, free)
    assert [r.status_code for r in answered] == [200, 200, 200]
    assert refused.status_code == 429 and other.status_code == 200
    assert surface.is_error_envelope(refused.json())
    text = refused.text
    _, end = period_bounds("day", datetime.now(UTC).timestamp())
    reset = datetime.fromtimestamp(end, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "'team'" in text and f"{TEAM.budget:g} USD per day" in text and reset in text
    assert 0 < int(refused.headers["retry-after"]) <= 86400
    if surface is OPENAI_CHAT:
        error = refused.json()["error"]
        assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert len(lb.fake("a").requests) == 4  # the refused request never reached the provider
    rows = await ledger_rows(sqlite_url(tmp_path))  # counted by the virtual keys' ids, the refusal too
    keys = [r["key"] for r in rows]
    assert len(set(keys)) == 2 and all(k.startswith("key_") for k in keys) and keys[3] == keys[0]
    assert [r["error"] for r in rows] == [None, None, None, "insufficient_quota", None]


async def test_spend_is_settled_from_the_ledger_after_a_restart(tmp_path: Path) -> None:
    team = await new_key(tmp_path, TEAM)
    async with server(tmp_path) as lb:
        for _ in range(3):
            assert (await ask(lb, OPENAI_CHAT, team)).status_code == 200
    async with server(tmp_path) as lb:
        again = await ask(lb, OPENAI_CHAT, team)
    assert again.status_code == 429 and again.json()["error"]["code"] == "insufficient_quota"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> dict[str, Any]:
    """One SQLite file (under the shared home), or a real PostgreSQL database."""
    if request.param == "sqlite":
        return {}
    return {"database_url": request.getfixturevalue("postgres_url")}


async def test_instances_sharing_a_database_see_each_others_spend(
    tmp_path: Path, database: dict[str, Any]
) -> None:
    team = await new_key(tmp_path, TEAM, **database)
    async with server(tmp_path, **database) as one, server(tmp_path, **database) as two:
        assert (await ask(two, OPENAI_CHAT, team)).status_code == 200  # ``two`` now watches the key
        for _ in range(2):
            assert (await ask(one, OPENAI_CHAT, team)).status_code == 200
        # ``two`` re-reads the spend after its next flushes: wait for that state, not for a time.
        for _ in range(200):
            if (await ask(two, OPENAI_CHAT, team)).status_code == 429:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the other instance never saw the spend")


def test_a_period_resets_at_its_utc_boundary() -> None:
    now = [datetime(2026, 12, 4, 23, 0, tzinfo=UTC).timestamp()]
    budgets = Budgets("USD", now=lambda: now[0])
    caller = Caller(owner="x", sees_all=False, policy=dataclasses.replace(TEAM, budget=1.0))
    monthly = Caller(
        owner="y", sees_all=False, policy=KeyPolicy(id="key_m", name="m", budget=1.0, period="month")
    )
    for key in ("key_team", "key_m"):
        budgets.noted({"key": key, "at": now[0], "cost": 1.5})
    with pytest.raises(QuotaExceeded) as refused:
        budgets.check(caller)
    assert refused.value.retry_after == pytest.approx(3600)
    now[0] = datetime(2026, 12, 5, 0, 0, 1, tzinfo=UTC).timestamp()
    budgets.check(caller)  # a new day
    with pytest.raises(QuotaExceeded, match="resets at 2027-01-01T00:00:00Z"):
        budgets.check(monthly)  # the same month
    assert budgets.spent("key_m", "month") == 1.5 and budgets.spent("key_team", "day") == 0.0
