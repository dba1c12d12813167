"""``lumbung usage``: requests, tokens, spend and savings from the usage ledger, grouped by key,
route, model or provider. Reads the state database itself (the one the server writes), so it needs no
running server."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from lumbung.accounts.usage import BY, By, UsageLine, parse_since, summarize, total
from lumbung.errors import LumbungError
from lumbung.settings import Settings, load_settings
from lumbung.state.db import Database


def _money(value: float) -> str:
    return f"{value:,.4f}"


def table_rows(lines: list[UsageLine]) -> list[list[str]]:
    """One row per group and the total (pure: unit-tested)."""
    out = []
    for line in [*lines, total(lines)]:
        out.append(
            [
                line.group if line.group is not None else "-",
                f"{line.requests:,}",
                f"{line.errors:,}",
                f"{line.failovers:,}",
                f"{line.prompt_tokens:,}",
                f"{line.completion_tokens:,}",
                f"{line.cached_tokens:,}",
                _money(line.spend),
                _money(line.reference),
                _money(line.savings),
            ]
        )
    return out


async def _read(settings: Settings, by: By, since: float | None) -> list[UsageLine]:
    db = Database(settings.database_url) if settings.database_url else Database.under(settings.home)
    try:
        await db.open()
        return await summarize(db, by, since)
    finally:
        await db.close()


@click.command("usage")
@click.option(
    "--config", type=click.Path(dir_okay=False, path_type=Path), default=None, help="YAML config file."
)
@click.option("--by", "by", type=click.Choice(BY), default="key", show_default=True, help="Group rows by.")
@click.option("--since", default=None, help="7d, 24h, 30m, or an ISO date/time (UTC). Default: all.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def usage(config: Path | None, by: By, since: str | None, as_json: bool) -> None:
    """Requests, tokens, spend and savings per key, route, model or provider (the usage ledger)."""
    try:
        settings, _ = load_settings(config)
        start = parse_since(since)
        lines = asyncio.run(_read(settings, by, start))
    except LumbungError as exc:
        raise click.ClickException(str(exc)) from exc
    currency = settings.prices.currency
    if as_json:
        body = {
            "by": by,
            "since": start,
            "currency": currency,
            "groups": [line.as_json() for line in lines],
            "total": total(lines).as_json(),
        }
        click.echo(json.dumps(body, indent=2))
        return
    when = (
        "all time"
        if start is None
        else "since " + datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M UTC")
    )
    grid = Table(title=f"usage by {by}, {when} ({currency})")
    for name in (
        by,
        "requests",
        "errors",
        "failovers",
        "tokens in",
        "tokens out",
        "cached",
        "spend",
        "reference",
        "savings",
    ):
        grid.add_column(name, justify="left" if name == by else "right")
    rows = table_rows(lines)
    for i, row in enumerate(rows):
        grid.add_row(*row, end_section=i == len(rows) - 2)
    console = Console()
    if not console.is_terminal:  # piped: the whole table, not one cut to 80 columns
        console = Console(width=160)
    console.print(grid)
