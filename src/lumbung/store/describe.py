"""What the store knows about a model, in the shapes the APIs show it (Ollama's /api/tags and
/api/show use ``details`` and ``model_info``; ``lumbung show`` prints the same facts).

    from lumbung.store.describe import model_details
    model_details(settings.home, "qwen2.5:0.5b-instruct")   # -> dict, or None if not stored
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lumbung.errors import ModelNotInStore
from lumbung.store.manifest import Manifest
from lumbung.store.store import ModelStore


def human_parameters(n: int) -> str:
    """Ollama's spelling: 494.03M, 7.6B."""
    if n >= 1_000_000_000:
        return f"{n / 1e9:.1f}B"
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    return f"{n / 1e3:.2f}K" if n >= 1000 else str(n)


def describe(manifest: Manifest) -> dict[str, Any]:
    g = manifest.gguf
    family = g.architecture if g and g.architecture else ""
    details = {
        "parent_model": "",
        "format": manifest.format,
        "family": family,
        "families": [family] if family else None,
        "parameter_size": human_parameters(g.parameters) if g else "",
        "quantization_level": (g.quantization or "") if g else "",
    }
    model_info: dict[str, Any] = {}
    if g is not None:
        model_info["general.architecture"] = g.architecture
        model_info["general.parameter_count"] = g.parameters
        if g.name:
            model_info["general.name"] = g.name
        if g.context_length is not None and g.architecture:
            model_info[f"{g.architecture}.context_length"] = g.context_length
    capabilities = (
        ["adapter"] if g and g.adapter else ["embedding"] if g and g.embedding else ["completion", "tools"]
    )
    return {
        "name": manifest.name,
        "model": manifest.name,
        "reference": manifest.reference,
        "aliases": manifest.aliases,
        "modified_at": manifest.pulled_at,
        "size": manifest.size,
        "digest": manifest.weights_digest,
        "details": details,
        "model_info": model_info,
        "capabilities": capabilities,
        "license": manifest.license or "",
        "chat_template": bool(g and g.chat_template),
        "source": manifest.source.model_dump(exclude_none=True),
        "files": [f.model_dump(include={"path", "size", "sha256", "kind"}) for f in manifest.files],
    }


def model_details(home: Path, name: str) -> dict[str, Any] | None:
    """The store's description of ``name`` (a name, alias or reference), or None if not stored."""
    try:
        return describe(ModelStore(home).find(name))
    except ModelNotInStore:
        return None
