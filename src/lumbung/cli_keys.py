"""``lumbung keys create | list | show | revoke | rotate``: virtual keys, on the data directory's
database directly (the one the server reads; a running server sees a change within a second, see
docs/accounts.md). The same over HTTP is ``/admin/keys`` on a running server."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lumbung.accounts.policy import KeyPolicy
from lumbung.accounts.store import KeyStore, VirtualKey, parse_expires
from lumbung.errors import LumbungError
from lumbung.settings import Settings, load_settings
from lumbung.state.db import Database

T = TypeVar("T")
_CONFIG = click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML config file (default: $LUMBUNG_CONFIG); its `database_url`, or else `home`, is where the keys are kept.",
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _settings(config: Path | None) -> Settings:
    try:
        settings, _ = load_settings(config, {})
    except LumbungError as exc:
        raise click.ClickException(str(exc)) from exc
    return settings


def _run(config: Path | None, work: Callable[[KeyStore], Awaitable[T]]) -> T:
    settings = _settings(config)

    async def go() -> T:
        db = await Database.at(settings.database_url, settings.home).open()
        try:
            return await work(KeyStore(db))
        finally:
            await db.close()

    try:
        return asyncio.run(go())
    except LumbungError as exc:
        raise click.ClickException(str(exc)) from exc


def _expires(text: str | None) -> datetime | None:
    try:
        return parse_expires(text, datetime.now(UTC)) if text else None
    except LumbungError as exc:
        raise click.BadParameter(str(exc), param_hint="--expires") from exc


def _listed(values: Iterable[str]) -> tuple[str, ...]:
    """Repeated options and comma-separated lists alike."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def _show_secret(key: VirtualKey, secret: str, as_json: bool, what: str) -> None:
    if as_json:
        click.echo(json.dumps({**key.to_json(), "key": secret}, indent=2))
        return
    click.echo(f"{what} key {key.id} ({key.name}). Its secret, shown only this once:", err=True)
    click.echo(secret)


def _table(keys: list[VirtualKey]) -> None:
    table = Table("id", "name", "key", "state", "scope", "limits", "expires")
    now = datetime.now(UTC)
    for key in keys:
        view = key.to_json(now)
        scope = "; ".join(f"{f}: {','.join(view[f])}" for f in ("routes", "models", "egress") if view[f])
        limits = [f"{f} {view[f]}" for f in ("rpm", "tpm", "max_concurrent") if view[f] is not None]
        if view["budget"] is not None:
            limits.append(f"budget {view['budget']}/{view['period']}")
        if view["record"] is not None:
            limits.append(f"record {view['record']}")
        table.add_row(
            *(
                escape(str(v))
                for v in (
                    key.id,
                    key.name,
                    key.hint,
                    view["state"],
                    scope or "any",
                    ", ".join(limits) or "-",
                    view["expires"] or "never",
                )
            )
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@click.group("keys")
def keys() -> None:
    """Virtual keys: API keys with their own scopes and limits, kept as digests in the data directory."""


@keys.command()
@_CONFIG
@click.option("--name", required=True, help="What the key is for (an app, a team); unique among live keys.")
@click.option("--routes", multiple=True, help="Routes it may use (comma-separated or repeated; default any).")
@click.option(
    "--models", multiple=True, help="Model names it may use (comma-separated or repeated; default any)."
)
@click.option(
    "--egress",
    multiple=True,
    help="Jurisdictions its data may go to (e.g. ID,SG; local models always); default: the routes' own policy.",
)
@click.option("--rpm", type=int, default=None, help="Requests per minute.")
@click.option("--tpm", type=int, default=None, help="Tokens (in + out) per minute.")
@click.option("--max-concurrent", type=int, default=None, help="Requests at once.")
@click.option("--budget", type=float, default=None, help="Spend allowed per period (needs --period).")
@click.option("--period", type=click.Choice(["day", "month"]), default=None, help="The budget's period.")
@click.option("--expires", default=None, help="When it stops working: 30d, 12h, 2w, or an ISO date/time.")
@click.option(
    "--record", type=float, default=None, help="Fraction (0-1) of its requests recorded for replay."
)
@_JSON
def create(
    config: Path | None,
    name: str,
    routes: tuple[str, ...],
    models: tuple[str, ...],
    egress: tuple[str, ...],
    rpm: int | None,
    tpm: int | None,
    max_concurrent: int | None,
    budget: float | None,
    period: str | None,
    expires: str | None,
    record: float | None,
    as_json: bool,
) -> None:
    """Make a key and print its secret (shown only this once; only its digest is kept)."""
    policy = KeyPolicy(
        id="",
        name=name,
        routes=_listed(routes),
        models=_listed(models),
        egress=_listed(egress),
        rpm=rpm,
        tpm=tpm,
        max_concurrent=max_concurrent,
        budget=budget,
        period="day" if period == "day" else "month" if period == "month" else None,
        expires=_expires(expires),
        record=record,
    )
    key, secret = _run(config, lambda store: store.create(policy))
    _show_secret(key, secret, as_json, "Created")
    settings = _settings(config)
    if not (settings.api_keys or settings.admin_api_keys):
        click.echo(
            "Note: this configuration has no api_keys or admin_api_keys, so the server answers "
            "everyone and checks no key, virtual keys included (docs/accounts.md).",
            err=True,
        )


@keys.command("list")
@_CONFIG
@_JSON
def list_keys(config: Path | None, as_json: bool) -> None:
    """List every key (revoked and expired ones too), never a secret."""
    found = _run(config, lambda store: store.all())
    if as_json:
        click.echo(json.dumps([k.to_json() for k in found], indent=2))
    elif not found:
        click.echo("No virtual keys.")
    else:
        _table(found)


@keys.command()
@_CONFIG
@click.argument("key")
@_JSON
def show(config: Path | None, key: str, as_json: bool) -> None:
    """Show one key (by id or name): its scopes, limits and state."""
    found = _run(config, lambda store: store.get(key))
    view: dict[str, Any] = found.to_json()
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    for field, value in view.items():
        if field != "object":
            click.echo(f"{field:<15} {value if not isinstance(value, list) else ', '.join(value) or 'any'}")


@keys.command()
@_CONFIG
@click.argument("key")
@_JSON
def revoke(config: Path | None, key: str, as_json: bool) -> None:
    """Revoke a key (by id or name) for good; servers refuse it within a second."""
    found = _run(config, lambda store: store.revoke(key))
    if as_json:
        click.echo(json.dumps(found.to_json(), indent=2))
    else:
        click.echo(f"Revoked key {found.id} ({found.name}).")


@keys.command()
@_CONFIG
@click.argument("key")
@_JSON
def rotate(config: Path | None, key: str, as_json: bool) -> None:
    """Give a key (by id or name) a new secret, printed once; the old one stops working."""
    found, secret = _run(config, lambda store: store.rotate(key))
    _show_secret(found, secret, as_json, "Rotated")
