"""The ``lumbung`` command line."""

from __future__ import annotations

import gc
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import click

from lumbung import (
    __version__,
    cli_gateway,
    cli_keys,
    cli_proof,
    cli_ps,
    cli_recordings,
    cli_run,
    cli_show,
    cli_size,
    cli_store,
    cli_usage,
)
from lumbung.errors import LumbungError
from lumbung.settings import Settings, load_settings

CONFIG_OPTION = click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML config file (default: $LUMBUNG_CONFIG).",
)


def _settings(config: Path | None, **overrides: Any) -> tuple[Settings, dict[str, str]]:
    try:
        return load_settings(config, overrides)
    except LumbungError as exc:
        raise click.ClickException(str(exc)) from exc


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upstream call is noise
    # The records carry none of these; skipping them makes each line cheaper (logging HOWTO, "Optimization").
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lumbung")
def main() -> None:
    """lumbung: serve open-weight models you own behind the OpenAI, Anthropic and Ollama APIs."""


@main.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8000).")
@CONFIG_OPTION
@click.option(
    "--allow-no-auth", is_flag=True, default=None, help="Allow a non-loopback address without API keys."
)
@click.option("--offline", is_flag=True, default=None, help="Make no network call (also LUMBUNG_OFFLINE=1).")
def serve(
    host: str | None, port: int | None, config: Path | None, allow_no_auth: bool | None, offline: bool | None
) -> None:
    """Start the API server (OpenAI-compatible at /v1) on the configured and embedded models."""
    import uvicorn

    from lumbung.server import build_app
    from lumbung.surfaces.http import SERVER_OPTIONS

    settings, _ = _settings(config, host=host, port=port, allow_no_auth=allow_no_auth, offline=offline)
    setup_logging(settings.log_level)
    try:
        app = build_app(settings)
    except LumbungError as exc:
        raise click.ClickException(str(exc)) from exc
    # Start-up's objects (modules, settings, routes) live as long as the server: keep them out of the
    # collector's way, so a collection during a request walks only what requests created.
    gc.freeze()
    click.echo(f"lumbung {__version__} serving on http://{settings.host}:{settings.port}/v1", err=True)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        **SERVER_OPTIONS,
        timeout_graceful_shutdown=5,
    )


@main.command("config")
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def show_config(config: Path | None, as_json: bool) -> None:
    """Print every setting, its value, and where the value came from."""
    settings, sources = _settings(config)
    values = settings.model_dump(mode="json")
    for name in ("api_keys", "admin_api_keys"):
        if values.get(name):
            values[name] = [f"<{len(values[name])} key(s) hidden>"]
    if values.get("database_url"):  # its password, if any, stays hidden
        values["database_url"] = re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", values["database_url"])
    if as_json:
        click.echo(json.dumps({k: {"value": v, "source": sources[k]} for k, v in values.items()}, indent=2))
        return
    width = max(len(k) for k in values)
    for key, value in values.items():
        click.echo(f"{key:<{width}}  {json.dumps(value)}  ({sources[key]})")


main.add_command(cli_gateway.status)
main.add_command(cli_gateway.drill)
main.add_command(cli_store.pull)
main.add_command(cli_store.list_models)
main.add_command(cli_show.show)
main.add_command(cli_size.size)
main.add_command(cli_store.rm)
main.add_command(cli_store.verify)
main.add_command(cli_store.export_models)
main.add_command(cli_store.import_models)
main.add_command(cli_ps.ps)
main.add_command(cli_usage.usage)
main.add_command(cli_run.run)
main.add_command(cli_proof.replay_command)
main.add_command(cli_recordings.recordings)
main.add_command(cli_proof.shadow)
main.add_command(cli_keys.keys)
