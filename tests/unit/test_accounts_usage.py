"""Spend and savings: prices per target (per token, or a local model's cost per hour) and a reference
price per route turn the ledger's rows into what `lumbung usage` and `/admin/usage` show."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from lumbung.accounts.usage import parse_since
from lumbung.cli import main
from lumbung.errors import ConfigError, InvalidRequest, UpstreamError
from lumbung.settings import load_settings
from lumbung.state.db import sqlite_url
from tests.support.fake_backend import Fail, FakeBackend
from tests.support.inprocess import MODEL, in_process, route
from tests.support.ledger import ledger_rows
from tests.support.surfaces import ANTHROPIC_MESSAGES, OPENAI_CHAT

PRICES: dict[str, Any] = {
    "currency": "EUR",
    "targets": {"a/m": {"input": 1000.0, "output": 2000.0}, "b/*": {"input": 500.0, "output": 500.0}},
    "routes": {"r": {"input": 10_000.0, "output": 30_000.0}},
}
# The fake backends answer with 2 prompt and 3 completion tokens.
A_COST = (2 * 1000 + 3 * 2000) / 1e6
B_COST = (2 * 500 + 3 * 500) / 1e6
REFERENCE = (2 * 10_000 + 3 * 30_000) / 1e6
ADMIN = {"authorization": "Bearer k-admin"}
USER = {"authorization": "Bearer k-user"}


async def test_spend_reference_and_savings_per_request_and_per_group(tmp_path: Path) -> None:
    providers = {"a": FakeBackend("a"), "b": FakeBackend("b")}
    async with in_process(
        tmp_path,
        providers=providers,
        routes=[route("r", ["a"], ["b"])],
        prices=PRICES,
        api_keys=["k-user"],
        admin_api_keys=["k-admin"],
    ) as lb:
        for _ in range(3):
            ok = await lb.client.post(
                OPENAI_CHAT.path, json=OPENAI_CHAT.body("r", stream=False), headers=USER
            )
            assert ok.status_code == 200
        lb.fake("a").then(Fail(UpstreamError("a broke")))
        anthropic = {**ANTHROPIC_MESSAGES.headers, "x-api-key": "k-user"}
        moved = await lb.client.post(
            ANTHROPIC_MESSAGES.path, json=ANTHROPIC_MESSAGES.body("r", stream=True), headers=anthropic
        )
        assert moved.status_code == 200
        local = await lb.client.post(
            OPENAI_CHAT.path, json=OPENAI_CHAT.body(MODEL, stream=False), headers=USER
        )
        assert local.status_code == 200
        refused = await lb.client.get("/admin/usage", headers=USER)
        by_route = await lb.client.get("/admin/usage?by=route", headers=ADMIN)
        by_provider = await lb.client.get("/admin/usage?by=provider&since=1h", headers=ADMIN)
        bad = await lb.client.get("/admin/usage?by=colour", headers=ADMIN)
    assert refused.status_code == 403
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "by"
    rows = await ledger_rows(sqlite_url(tmp_path))
    assert [r["cost"] for r in rows[:3]] == pytest.approx([A_COST] * 3)
    assert rows[3]["outcome"] == "failed_over" and rows[3]["cost"] == pytest.approx(B_COST)
    assert rows[4]["cost"] is None and rows[4]["reference_cost"] is None  # the local model has no price
    assert [r["reference_cost"] for r in rows[:4]] == pytest.approx([REFERENCE] * 4)
    # Admin requests have no row; every API request has one, with the config key's digest.
    assert len(rows) == 5 and {r["key"] for r in rows} == {rows[0]["key"]}
    assert rows[0]["key"].startswith("sha256:")

    body = by_route.json()
    assert body["currency"] == "EUR" and body["by"] == "route"
    groups = {g["group"]: g for g in body["groups"]}
    assert groups["r"]["requests"] == 4 and groups["r"]["failovers"] == 1
    assert groups["r"]["spend"] == pytest.approx(3 * A_COST + B_COST)
    assert groups["r"]["reference"] == pytest.approx(4 * REFERENCE)
    assert groups["r"]["savings"] == pytest.approx(4 * REFERENCE - 3 * A_COST - B_COST)
    assert groups[MODEL]["requests"] == 1 and groups[MODEL]["savings"] == 0
    assert body["total"]["requests"] == 5
    providers_seen = {g["group"]: g["requests"] for g in by_provider.json()["groups"]}
    assert providers_seen == {"a": 3, "b": 1, "local": 1}


async def test_a_local_model_costs_its_share_of_the_hour(tmp_path: Path) -> None:
    prices = {"targets": {"local/*": {"per_hour": 3600.0}}}
    async with in_process(tmp_path, prices=prices, parallel=4) as lb:
        response = await lb.client.post(OPENAI_CHAT.path, json=OPENAI_CHAT.body(MODEL, stream=False))
        assert response.status_code == 200
    [row] = await ledger_rows(sqlite_url(tmp_path))
    # 3600 an hour, shared by 4 sequences: a second of the model's time costs 0.25.
    assert 0 < row["cost"] <= row["latency_ms"] / 1000 * 0.25


def test_lumbung_usage_prints_spend_and_savings(tmp_path: Path) -> None:
    import asyncio

    async def traffic() -> None:
        prices = {**PRICES, "targets": {"a/m": PRICES["targets"]["a/m"]}}
        async with in_process(
            tmp_path, providers={"a": FakeBackend("a")}, routes=[route("r", ["a"])], prices=prices
        ) as lb:
            for _ in range(2):
                ok = await lb.client.post(OPENAI_CHAT.path, json=OPENAI_CHAT.body("r", stream=False))
                assert ok.status_code == 200

    asyncio.run(traffic())
    config = tmp_path / "lumbung.yaml"
    provider = {"name": "a", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "jurisdiction": "ID"}
    settings = {
        "home": str(tmp_path),
        "serve_default_model": False,
        "providers": [provider],
        "routes": [route("r", ["a"])],
        "prices": {**PRICES, "targets": {"a/m": PRICES["targets"]["a/m"]}},
    }
    config.write_text(yaml.safe_dump(settings))
    runner = CliRunner()
    shown = runner.invoke(main, ["usage", "--config", str(config), "--by", "route"])
    assert shown.exit_code == 0, shown.output
    assert "usage by route" in shown.output and "EUR" in shown.output
    line = next(x for x in shown.output.splitlines() if x.strip("│ ").startswith("r "))
    assert f"{2 * A_COST:,.4f}" in line and f"{2 * (REFERENCE - A_COST):,.4f}" in line
    as_json = runner.invoke(
        main, ["usage", "--config", str(config), "--by", "model", "--json", "--since", "1d"]
    )
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.output)
    assert body["total"]["requests"] == 2 and body["total"]["savings"] == pytest.approx(
        2 * (REFERENCE - A_COST)
    )
    bad = runner.invoke(main, ["usage", "--config", str(config), "--since", "last tuesday"])
    assert bad.exit_code != 0 and "neither a duration" in bad.output


def test_since_reads_durations_and_iso_times() -> None:
    assert parse_since("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_since("2026-12-01") == parse_since("2026-12-01T00:00:00Z")
    assert parse_since(None) is None
    with pytest.raises(InvalidRequest):
        parse_since("soon")


@pytest.mark.parametrize(
    ("prices", "said"),
    [
        ({"targets": {"nobody/m": {"input": 1}}}, "'nobody/m' names no configured provider"),
        ({"routes": {"chta": {"input": 1}}}, "'chta' is not a route"),
        ({"targets": {"a": {"input": 1}}}, "must look like `provider/model`"),
        ({"targets": {"a/m": {"input": -1}}}, "greater than or equal to 0"),
    ],
)
def test_prices_naming_nothing_are_refused_at_start_up(
    tmp_path: Path, prices: dict[str, Any], said: str
) -> None:
    config = tmp_path / "lumbung.yaml"
    settings = {
        "serve_default_model": False,
        "providers": [
            {"name": "a", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "jurisdiction": "ID"}
        ],
        "routes": [{"name": "chat", "tiers": [["a/m"]]}],
        "prices": prices,
    }
    config.write_text(yaml.safe_dump(settings))
    with pytest.raises(ConfigError, match=re.escape(said)):
        load_settings(config, environ={})


def test_lumbung_config_hides_the_database_password(tmp_path: Path) -> None:
    config = tmp_path / "lumbung.yaml"
    config.write_text(
        yaml.safe_dump({"database_url": "postgresql+asyncpg://ledger:s3cret@db.internal/lumbung"})
    )
    shown = CliRunner().invoke(main, ["config", "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    assert (
        "s3cret" not in shown.output and "postgresql+asyncpg://ledger:***@db.internal/lumbung" in shown.output
    )
