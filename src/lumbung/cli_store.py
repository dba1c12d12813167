"""The store's commands: ``lumbung pull | list | show | rm | verify | export | import``."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from lumbung.errors import LumbungError
from lumbung.settings import Settings, load_settings
from lumbung.store.pull import Progress, PullOptions
from lumbung.store.store import ModelStore

CONFIG = click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML config file (default: $LUMBUNG_CONFIG).",
)
JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        settings, _ = load_settings(config, overrides)
    except LumbungError as exc:
        raise click.ClickException(str(exc)) from exc
    from lumbung.store.offline import apply_offline

    apply_offline(settings)
    return settings


@contextmanager
def _errors() -> Iterator[None]:
    """Store errors become one clear line and exit status 1, never a traceback."""
    try:
        yield
    except LumbungError as exc:
        raise click.ClickException(str(exc)) from exc


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} MB"


class ProgressView:
    """A progress bar per file on a terminal (rich); plain lines otherwise (logs, CI, pipes)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bars: Any = None
        self._tasks: dict[str, Any] = {}
        self._last: dict[str, tuple[int, float]] = {}
        self._said: set[str] = set()

    def __enter__(self) -> ProgressView:
        if self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
            )
            self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bars is not None:
            self._bars.stop()

    def __call__(self, p: Progress) -> None:
        if p.total is None or p.file is None:
            if p.status not in self._said:
                self._said.add(p.status)
                self._line(p.status)
            return
        if self._bars is not None:
            task = self._tasks.get(p.status)
            if task is None:
                task = self._tasks[p.status] = self._bars.add_task(p.status, total=p.total)
            self._bars.update(task, completed=p.completed or 0)
            return
        done = p.completed or 0
        step, at = self._last.get(p.status, (-1, 0.0))
        tenth = done * 10 // max(p.total, 1)
        if tenth != step and (tenth == 10 or time.monotonic() - at > 1.0 or step < 0):
            self._last[p.status] = (tenth, time.monotonic())
            self._line(f"{p.status}: {done * 100 // max(p.total, 1)}% ({_mb(done)} of {_mb(p.total)})")

    def _line(self, text: str) -> None:
        if self._bars is not None:
            self._bars.console.print(text)
        else:
            print(text, file=self.stream, flush=True)


@click.command()
@click.argument("references", nargs=-1, required=False)
@click.option("--offline", is_flag=True, default=None, help="Make no network call (also LUMBUNG_OFFLINE=1).")
@click.option("--catalog", "show_catalog", is_flag=True, help="List the built-in short names and exit.")
@CONFIG
def pull(references: tuple[str, ...], offline: bool | None, show_catalog: bool, config: Path | None) -> None:
    """Pull models into the store: hf:ORG/REPO[@REV][:FILE|:QUANT], ms:..., file:PATH, or a short name.

    Resumes an interrupted download, checks every file's sha256 against the hub's, and records the
    resolved commit and licence in the model's manifest.
    """
    if show_catalog:
        from lumbung.store.catalog import CATALOG

        name_w = max(len(e.name) for e in CATALOG)
        ref_w = max(len(e.reference) for e in CATALOG)
        lic_w = max(len(e.license or "?") for e in CATALOG)
        for e in CATALOG:
            tags = f" [{', '.join(e.tags)}]" if e.tags else ""
            click.echo(
                f"{e.name:<{name_w}}  {e.reference:<{ref_w}}  {e.license or '?':<{lic_w}}  {e.description}{tags}"
            )
        return
    if not references:
        raise click.UsageError("name at least one model to pull (or --catalog to list short names)")
    settings = _settings(config, offline=offline)
    from lumbung.store.pull import pull as do_pull

    store = ModelStore(settings.home)
    options = PullOptions(settings.offline, settings.hf_endpoint, settings.modelscope_endpoint)
    with _errors():
        for raw in references:
            with ProgressView() as view:
                manifest = do_pull(store, raw, options, view)
            commit = f" at {manifest.source.commit[:12]}" if manifest.source.commit else ""
            click.echo(f"pulled {manifest.name} ({_mb(manifest.size)}{commit})")


@click.command("list")
@JSON
@CONFIG
def list_models(as_json: bool, config: Path | None) -> None:
    """List the models in the store."""
    from lumbung.store.describe import describe

    store = ModelStore(_settings(config).home)
    with _errors():
        manifests = store.models()
    if as_json:
        click.echo(json.dumps([describe(m) for m in manifests], indent=2))
        return
    rows = [("NAME", "SIZE", "QUANT", "FORMAT", "REFERENCE")]
    for m in manifests:
        quant = (m.gguf.quantization or "") if m.gguf else ""
        rows.append((m.name, _mb(m.size), quant, m.format, m.reference))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=False)) + "  " + r[4])


@click.command()
@click.argument("models", nargs=-1, required=True)
@CONFIG
def rm(models: tuple[str, ...], config: Path | None) -> None:
    """Remove models from the store (blobs other models still use are kept)."""
    store = ModelStore(_settings(config).home)
    with _errors():
        for name in models:
            manifest, freed = store.remove(name)
            click.echo(f"removed {manifest.name} (freed {_mb(freed)})")


@click.command()
@click.argument("models", nargs=-1)
@CONFIG
def verify(models: tuple[str, ...], config: Path | None) -> None:
    """Re-hash every file of the named models (default: all) against their manifests.

    Exits with status 1 if any file is missing or does not match.
    """
    store = ModelStore(_settings(config).home)
    bad = 0
    with _errors():
        manifests = [store.find(n) for n in models] if models else store.models()
        for m in manifests:
            problems = store.verify(m)
            bad += bool(problems)
            click.echo(
                f"{'ok      ' if not problems else 'DAMAGED '} {m.name} ({len(m.files)} files, {_mb(m.size)})"
            )
            for p in problems:
                click.echo(f"  {p}")
    if bad:
        raise click.ClickException(f"{bad} model(s) failed verification: pull or import them again")


@click.command("export")
@click.argument("models", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The bundle to write (a tar file).",
)
@CONFIG
def export_models(models: tuple[str, ...], output: Path, config: Path | None) -> None:
    """Write models (manifests and blobs) to a bundle for a machine with no network."""
    from lumbung.store.bundle import export

    store = ModelStore(_settings(config).home)
    with _errors():
        done = export(store, list(models), output)
    click.echo(f"exported {', '.join(m.name for m in done)} to {output}")


@click.command("import")
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--as",
    "rename",
    default=None,
    metavar="NAME",
    help="Import the bundle's one model under this name (when its own name is taken here).",
)
@CONFIG
def import_models(bundle: Path, rename: str | None, config: Path | None) -> None:
    """Add the models of a bundle to the store, re-hashing and checking every file first."""
    from lumbung.settings import DEFAULT_MODEL_ALIASES, DEFAULT_MODEL_ID, GEMMA_MODEL_ID
    from lumbung.store.bundle import import_bundle

    settings = _settings(config)
    # Names the server gives models and routes that are not in the store's manifests: an import must
    # not take them (a name served twice stops the server from starting).
    reserved = {name for model in settings.models for name in (model.id, *model.aliases)}
    reserved |= {name for route in settings.routes for name in (route.name, *route.aliases)}
    if settings.serve_default_model:
        reserved |= {DEFAULT_MODEL_ID, *DEFAULT_MODEL_ALIASES, GEMMA_MODEL_ID}
    store = ModelStore(settings.home)
    with _errors():
        done = import_bundle(store, bundle, reserved=reserved, rename=rename)
    click.echo(f"imported {', '.join(m.name for m in done)}")
