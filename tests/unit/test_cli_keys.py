"""``lumbung keys``: create (the secret printed once), list, show, revoke, rotate, on the data
directory's real database; bad input is one clear line and exit status 1."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from lumbung.accounts.keys import digest
from lumbung.accounts.store import parse_expires
from lumbung.cli import main
from tests.support.keys import key_store


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LUMBUNG_HOME", str(tmp_path))
    monkeypatch.delenv("LUMBUNG_CONFIG", raising=False)
    return CliRunner()


def keys(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(main, ["keys", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_create_prints_the_secret_once_and_keeps_its_digest(run: CliRunner, tmp_path: Path) -> None:
    made = json.loads(
        keys(
            run,
            "create",
            "--name",
            "billing",
            "--models",
            "a,b",
            "--models",
            "c",
            "--egress",
            "ID",
            "--rpm",
            "60",
            "--tpm",
            "1000",
            "--max-concurrent",
            "2",
            "--budget",
            "5",
            "--period",
            "month",
            "--expires",
            "30d",
            "--record",
            "0.1",
            "--json",
        )
    )
    assert made["models"] == ["a", "b", "c"] and made["egress"] == ["ID"] and made["record"] == 0.1
    assert made["budget"] == 5.0 and made["period"] == "month" and made["max_concurrent"] == 2

    async def stored() -> list[str]:
        async with key_store(tmp_path) as store:
            return [s.digest for s in (await store.snapshot())[1]]

    assert asyncio.run(stored()) == [digest(made["key"])]
    listed = json.loads(keys(run, "list", "--json"))
    assert [k["id"] for k in listed] == [made["id"]] and "key" not in listed[0]
    assert made["key"] not in keys(run, "list") + keys(run, "show", "billing")


def test_plain_create_prints_only_the_secret_on_stdout(run: CliRunner) -> None:
    secret = keys(run, "create", "--name", "app").strip()
    assert secret.startswith("lb-") and "\n" not in secret


def test_revoke_and_rotate(run: CliRunner) -> None:
    first = keys(run, "create", "--name", "app").strip()
    second = keys(run, "rotate", "app").strip()
    assert second.startswith("lb-") and second != first
    keys(run, "revoke", "app")
    assert json.loads(keys(run, "show", "app", "--json"))["state"] == "revoked"
    refused = run.invoke(main, ["keys", "rotate", "app"])
    assert refused.exit_code == 1 and "revoked" in refused.output


@pytest.mark.parametrize(
    "args",
    [
        ["create", "--name", "x", "--rpm", "0"],
        ["create", "--name", "x", "--budget", "3"],
        ["create", "--name", "x", "--expires", "soon"],
        ["create", "--name", "x", "--record", "2"],
        ["show", "nobody"],
        ["revoke", "nobody"],
    ],
)
def test_bad_input_is_one_line_and_status_1(run: CliRunner, args: list[str]) -> None:
    result = run.invoke(main, ["keys", *args])
    assert result.exit_code in (1, 2) and "Traceback" not in result.output
    assert "Error" in result.output


def test_every_command_says_what_it_does(run: CliRunner) -> None:
    for command in ("create", "list", "show", "revoke", "rotate"):
        result = run.invoke(main, ["keys", command, "--help"])
        assert result.exit_code == 0 and len(result.output.splitlines()) > 3


def test_expires_reads_durations_and_dates() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_expires("30d", now) == now + timedelta(days=30)
    assert parse_expires("12h", now) == now + timedelta(hours=12)
    assert parse_expires("2027-01-31", now) == datetime(2027, 1, 31, tzinfo=UTC)
    assert parse_expires("2027-01-31T12:00+07:00", now).utcoffset() == timedelta(hours=7)
