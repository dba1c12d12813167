"""``lumbung show MODEL``: what a model is and what it can do, before anything loads it.

A stored model: source and commit, licence, size, context, files with sha256, and what its chat
template supports (tools, reasoning), plus the LoRA adapters the config puts over it. A catalogue
short name not pulled yet: its repository, licence and tags.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from lumbung.cli_store import CONFIG, JSON, _errors, _mb, _settings
from lumbung.errors import LumbungError, ModelNotInStore
from lumbung.settings import Settings
from lumbung.store.manifest import Manifest
from lumbung.store.store import ModelStore


def template_lines(store: ModelStore, m: Manifest) -> list[str]:
    from lumbung.store.capabilities import gguf_template_facts

    if m.gguf is None or m.gguf.adapter or m.gguf.embedding or not m.weights:
        return []
    try:
        facts = gguf_template_facts(store.blob_path(m.weights[0].sha256))
    except (LumbungError, OSError):
        return ["template    ? (the file could not be read: run `lumbung verify`)"]
    where = "the GGUF's own" if facts.template == "gguf" else f"built-in {facts.template} (the GGUF has none)"
    tools = (
        f"yes: the template renders them; calls in {facts.tool_format} syntax"
        if facts.tools_in_template
        else f"yes: lumbung writes them in {facts.tool_format} syntax (the template has no tools)"
    )
    reasoning = "no"
    if facts.reasoning_switch:
        reasoning = "yes, switchable (enable_thinking / Ollama think)"
    elif facts.reasoning:
        reasoning = "yes (<think> blocks, returned as reasoning)"
    return [f"template    {where}", f"tools       {tools}", f"reasoning   {reasoning}"]


def adapters_of(settings: Settings, store: ModelStore, m: Manifest) -> list[str]:
    """The config's adapters over this model (entries naming it by id or by stored ref)."""
    out = []
    for model in settings.models:
        try:
            mine = model.id in m.names() or (model.ref is not None and store.find(model.ref).name == m.name)
        except ModelNotInStore:
            mine = False
        if mine:
            for a in model.adapters:
                source = a.ref or str(a.path)
                out.append(f"  {model.adapter_id(a)}  scale {a.scale:g}  {source}")
    return out


def catalogue_lines(name: str) -> list[str] | None:
    from lumbung.store.catalog import entry

    e = entry(name)
    if e is None:
        return None
    return [
        f"name        {e.name} (in the catalogue, not pulled: `lumbung pull {e.name}`)",
        f"reference   {e.reference}",
        f"about       {e.description}",
        f"licence     {e.license or 'see the repository'}",
        f"tags        {', '.join(e.tags) or '-'}",
    ]


@click.command()
@click.argument("model")
@JSON
@CONFIG
def show(model: str, as_json: bool, config: Path | None) -> None:
    """Show a model: source, commit, licence, size, context, what its template supports (tools,
    reasoning), its adapters and files with sha256; or a catalogue short name not yet pulled."""
    from lumbung.store.describe import describe

    settings = _settings(config)
    store = ModelStore(settings.home)
    try:
        m = store.find(model)
    except ModelNotInStore as exc:
        lines = catalogue_lines(model)
        if lines is None or as_json:
            raise click.ClickException(str(exc)) from exc
        click.echo("\n".join(lines))
        return
    except LumbungError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(m.model_dump(mode="json"), indent=2))
        return
    with _errors():
        d: dict[str, Any] = describe(m)
        src = m.source
        lines = [
            f"name        {m.name}",
            f"reference   {m.reference}",
            f"aliases     {', '.join(m.aliases) or '-'}",
            f"source      {src.kind}:{src.repo or src.path or ''}"
            + (f" @ {src.revision}" if src.revision else "")
            + (f" -> commit {src.commit}" if src.commit else ""),
            f"licence     {m.license or 'unknown'}",
            f"format      {m.format}, {_mb(m.size)}",
        ]
        if m.gguf and m.gguf.adapter:
            lines.append(
                f"adapter     LoRA adapter for {m.gguf.architecture} models (declare it under a model)"
            )
        elif m.gguf:
            g = m.gguf
            lines += [
                f"model       {g.architecture}, {d['details']['parameter_size']} parameters, "
                f"{g.quantization or '?'}",
                f"context     {g.context_length or '?'} tokens trained"
                + ("; embedding model" if g.embedding else ""),
            ]
        lines += template_lines(store, m)
        adapters = adapters_of(settings, store, m)
        if adapters:
            lines += ["adapters", *adapters]
        lines.append("files")
        lines += [f"  {f.path}  {_mb(f.size)}  sha256:{f.sha256}  ({f.checked_against})" for f in m.files]
    click.echo("\n".join(lines))
