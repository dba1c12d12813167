"""``lumbung size MODEL``: the memory a model needs to serve, from its own files: weights plus the KV
cache of ``--ctx`` tokens for each of ``--parallel`` sequences (store/sizing.py)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lumbung.cli_store import CONFIG, JSON, _errors, _settings
from lumbung.engines.llamacpp.context import FALLBACK_TRAINED
from lumbung.store.sizing import KV_TYPES, Estimate, estimate, gguf_shape, shape_of


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def lines(e: Estimate) -> list[str]:
    s = e.shape
    heads = "/".join(str(h) for h in sorted(set(s.kv_heads)))
    per_element = KV_TYPES[e.kv_type]
    if s.value_length:
        how = f"{s.n_layer} layers x {heads} KV heads x ({s.key_length} + {s.value_length})"
    else:
        how = f"{s.n_layer} layers x {s.key_length} (latent attention)"
    out = [
        f"model         {s.architecture} ({s.source})"
        + (f", {s.parameters / 1e9:.2f}B parameters" if s.parameters else ""),
        f"weights       {_gib(s.weights_bytes)}",
        f"KV per token  {e.kv_per_token / 1024:.1f} KiB = {how} x {per_element:g} bytes ({e.kv_type})",
        f"KV cache      {_gib(e.kv_bytes)} for {e.context} tokens x {e.parallel} sequences",
        f"total         {_gib(e.total_bytes)}, plus compute buffers (llama.cpp and vLLM log theirs at start)",
    ]
    if s.context_trained:
        out.append(f"trained on    {s.context_trained} tokens of context")
    if s.sliding_window:
        out.append(
            f"note          sliding-window attention ({s.sliding_window} tokens): counted as full KV in "
            "every layer, as lumbung runs llama.cpp (swa_full) and an upper bound for vLLM"
        )
    return out


@click.command()
@click.argument("model")
@click.option("--ctx", type=click.IntRange(min=1), default=None, help="Context tokens per sequence.")
@click.option("--parallel", type=click.IntRange(min=1), default=None, help="Sequences at once.")
@click.option(
    "--kv-type",
    type=click.Choice(sorted(KV_TYPES)),
    default=None,
    help="KV cache element type (default: f16 for GGUF as llama.cpp, the model's dtype for config.json).",
)
@JSON
@CONFIG
def size(
    model: str, ctx: int | None, parallel: int | None, kv_type: str | None, as_json: bool, config: Path | None
) -> None:
    """Memory to serve MODEL (a stored model, a GGUF file, or a Hugging Face config.json or its folder
    for vLLM): weights + KV cache bytes per token x context x parallel sequences, from the model's own
    metadata. Defaults: the server's context_size (else the trained context) and parallel for a GGUF,
    the trained context and one sequence for a config.json."""
    settings = _settings(config)
    with _errors():
        path = Path(model)
        if path.exists():
            shape = shape_of(path)
        else:
            from lumbung.store.gguf_info import read_gguf
            from lumbung.store.store import ModelStore

            store = ModelStore(settings.home)
            manifest = store.find(model)
            shape = gguf_shape([read_gguf(store.blob_path(f.sha256), f.path) for f in manifest.weights])
        gguf = shape.source == "gguf"
        # What the server would give each request: its context_size, else the model's trained
        # context (the memory budget may lower it at load: docs/models.md, "Context length").
        context = ctx or settings.context_size or shape.context_trained or FALLBACK_TRAINED
        sequences = parallel or (settings.parallel if gguf else 1)
        e = estimate(shape, context, sequences, kv_type)
    click.echo(json.dumps(e.as_dict(), indent=2) if as_json else "\n".join(lines(e)))
