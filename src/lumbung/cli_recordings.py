"""``lumbung recordings list | show | export | import | rm``: the recorded traffic under HOME/recordings
(docs/migration.md)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from lumbung.errors import LumbungError
from lumbung.proof import library
from lumbung.proof.exchange import Exchange
from lumbung.proof.importer import read_batch, read_openai_jsonl
from lumbung.proof.redact import Redactor
from lumbung.settings import Settings, load_settings

CONFIG = click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML config file (default: $LUMBUNG_CONFIG).",
)
JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except LumbungError as exc:
        raise click.ClickException(str(exc)) from exc


def _settings(config: Path | None) -> Settings:
    with _errors():
        return load_settings(config)[0]


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


@click.group("recordings")
def recordings() -> None:
    """Recorded traffic (routes' `record`, keys' --record, shadow pairs, imports) for `lumbung replay`."""


@recordings.command("list")
@CONFIG
@JSON
def list_recordings(config: Path | None, as_json: bool) -> None:
    """Every recording: exchanges, size, first and last, by role."""
    settings = _settings(config)
    with _errors():
        found = library.summaries(settings.home)
    if as_json:
        click.echo(json.dumps([s.as_json() for s in found], indent=2))
        return
    if not found:
        click.echo(f"no recordings under {settings.home / 'recordings'}")
        return
    click.echo(f"{'NAME':<28} {'EXCHANGES':>9} {'FAILED':>6} {'SIZE':>9}  {'FIRST':<16}  {'LAST':<16}  ROLES")
    for s in found:
        roles = ", ".join(f"{role} {n}" for role, n in sorted(s.roles.items()))
        size = f"{s.size / 1024:.1f} KiB"
        first, last = _when(s.first), _when(s.last)
        click.echo(f"{s.name:<28} {s.exchanges:>9} {s.failed:>6} {size:>9}  {first:<16}  {last:<16}  {roles}")


def _answer_text(exchange: Exchange) -> str:
    if exchange.response is None:
        return f"(failed: {exchange.error})"
    message = (exchange.response.get("choices") or [{}])[0].get("message") or {}
    calls = message.get("tool_calls") or []
    if calls:
        return "tool calls: " + ", ".join(str((c.get("function") or {}).get("name")) for c in calls)
    return str(message.get("content") or "")


def _prompt_text(exchange: Exchange) -> str:
    messages = exchange.request.get("messages") or [{}]
    content = messages[-1].get("content") if isinstance(messages[-1], dict) else ""
    return content if isinstance(content, str) else json.dumps(content)


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@recordings.command("show")
@click.argument("name")
@click.option("--id", "rid", default=None, help="Print this one exchange whole (JSON).")
@click.option("--limit", type=int, default=50, show_default=True, help="Exchanges listed at most (0: all).")
@CONFIG
@JSON
def show(name: str, rid: str | None, limit: int, config: Path | None, as_json: bool) -> None:
    """The exchanges of recording NAME, one line each (or one whole, with --id)."""
    settings = _settings(config)
    with _errors():
        exchanges = library.load(settings.home, name)
    if rid is not None:
        match = [e for e in exchanges if e.id == rid]
        if not match:
            raise click.ClickException(f"recording {name!r} has no exchange {rid!r}")
        for exchange in match:
            click.echo(
                exchange.to_json() if not as_json else json.dumps(json.loads(exchange.to_json()), indent=2)
            )
        return
    shown = exchanges if limit <= 0 else exchanges[:limit]
    if as_json:
        click.echo(json.dumps([json.loads(e.to_json()) for e in shown], indent=2))
        return
    for e in shown:
        latency = f"{e.latency_ms:.0f} ms" if e.latency_ms is not None else "-"
        click.echo(
            f"{e.id:<30} {_when(e.created):<16} {e.role:<16} {e.provider or e.route or '-'!s:<24} {latency:>8}  "
            f"{_short(_prompt_text(e), 40)!r} -> {_short(_answer_text(e), 50)!r}"
        )
    if len(shown) < len(exchanges):
        click.echo(f"... {len(exchanges) - len(shown)} more (--limit 0 shows all)")


@recordings.command("export")
@click.argument("name")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["exchanges", "openai"]),
    default="exchanges",
    show_default=True,
    help="exchanges: lumbung's own lines; openai: {request, response} per line, as `import` reads.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File (default: stdout).",
)
@CONFIG
def export(name: str, fmt: str, output: Path | None, config: Path | None) -> None:
    """Write recording NAME as JSONL."""
    settings = _settings(config)
    with _errors():
        exchanges = library.load(settings.home, name)
    lines = library.openai_lines(exchanges) if fmt == "openai" else (e.to_json() for e in exchanges)
    text = "".join(line + "\n" for line in lines)
    if output is None:
        sys.stdout.write(text)
        return
    tmp = output.with_name(output.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(output)
    click.echo(f"wrote {len(exchanges)} exchanges to {output}", err=True)


@recordings.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Name of the new recording.")
@click.option(
    "--batch-output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="FILE is a Batch API input file: this is its output file (paired by custom_id).",
)
@click.option("--group", default=None, help="Label every imported exchange with this group (for the report).")
@click.option("--replace", is_flag=True, help="Overwrite an existing recording of that name.")
@CONFIG
def import_recording(
    file: Path, name: str, batch_output: Path | None, group: str | None, replace: bool, config: Path | None
) -> None:
    """Import traffic recorded elsewhere: OpenAI-format JSONL ({"request": ..., "response": ...} per
    line), or a Batch API input FILE with its --batch-output. Redaction rules apply; nothing is
    written unless every line is good."""
    settings = _settings(config)
    with _errors():
        exchanges = read_batch(file, batch_output) if batch_output else read_openai_jsonl(file)
        if group is not None:
            for exchange in exchanges:
                exchange.group = group
        redact = settings.recording.redact
        path = library.save(
            settings.home, name, exchanges, Redactor(redact.paths, redact.patterns), replace=replace
        )
    failed = sum(e.response is None for e in exchanges)
    note = f" ({failed} without an answer)" if failed else ""
    click.echo(f"imported {len(exchanges)} exchanges{note} into {name} ({path})")


@recordings.command("rm")
@click.argument("names", nargs=-1, required=True)
@CONFIG
def rm(names: tuple[str, ...], config: Path | None) -> None:
    """Delete recordings."""
    settings = _settings(config)
    with _errors():
        paths = [library.path_of(settings.home, name) for name in names]  # all exist, or none is deleted
        for path in paths:
            path.unlink()
            click.echo(f"deleted {path}")
