"""The built-in catalogue: short names for the open-weight models people run on CPUs.

Each entry names a GGUF repository and a quantisation, not a file: the file (or the parts of a split
model) is picked from the repository's listing at pull time, so a renamed file does not break a name.
Q4_K_M is the usual balance of size and quality on CPUs; small models whose publishers ship only
Q8_0 use that.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lumbung.errors import BadReference

if TYPE_CHECKING:
    from lumbung.store.refs import Reference


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    reference: str
    description: str
    embedding: bool = False


EMBEDDED = CatalogEntry(
    "gemma3:270m", "embedded:gemma3-270m-q4_k_m", "Gemma 3 270M base (embedded default, ships with lumbung)"
)

CATALOG: tuple[CatalogEntry, ...] = (
    EMBEDDED,
    # Qwen
    CatalogEntry("qwen3:0.6b", "hf:unsloth/Qwen3-0.6B-GGUF:q4_k_m", "Qwen3 0.6B (thinking and non-thinking)"),
    CatalogEntry("qwen3:1.7b", "hf:unsloth/Qwen3-1.7B-GGUF:q4_k_m", "Qwen3 1.7B"),
    CatalogEntry("qwen3:4b", "hf:unsloth/Qwen3-4B-Instruct-2507-GGUF:q4_k_m", "Qwen3 4B Instruct 2507"),
    CatalogEntry("qwen3:8b", "hf:unsloth/Qwen3-8B-GGUF:q4_k_m", "Qwen3 8B"),
    CatalogEntry(
        "qwen2.5:0.5b-instruct", "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:q4_k_m", "Qwen2.5 0.5B Instruct"
    ),
    CatalogEntry(
        "qwen2.5:1.5b-instruct", "hf:Qwen/Qwen2.5-1.5B-Instruct-GGUF:q4_k_m", "Qwen2.5 1.5B Instruct"
    ),
    CatalogEntry("qwen2.5:3b-instruct", "hf:Qwen/Qwen2.5-3B-Instruct-GGUF:q4_k_m", "Qwen2.5 3B Instruct"),
    CatalogEntry(
        "qwen2.5:7b-instruct", "hf:Qwen/Qwen2.5-7B-Instruct-GGUF:q4_k_m", "Qwen2.5 7B Instruct (split GGUF)"
    ),
    CatalogEntry(
        "qwen2.5-coder:1.5b-instruct", "hf:Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF:q4_k_m", "Qwen2.5 Coder 1.5B"
    ),
    CatalogEntry(
        "qwen2.5-coder:7b-instruct", "hf:Qwen/Qwen2.5-Coder-7B-Instruct-GGUF:q4_k_m", "Qwen2.5 Coder 7B"
    ),
    # DeepSeek R1 distills
    CatalogEntry(
        "deepseek-r1:1.5b",
        "hf:unsloth/DeepSeek-R1-Distill-Qwen-1.5B-GGUF:q4_k_m",
        "DeepSeek R1 distilled into Qwen 1.5B",
    ),
    CatalogEntry(
        "deepseek-r1:7b",
        "hf:unsloth/DeepSeek-R1-Distill-Qwen-7B-GGUF:q4_k_m",
        "DeepSeek R1 distilled into Qwen 7B",
    ),
    CatalogEntry(
        "deepseek-r1:8b",
        "hf:unsloth/DeepSeek-R1-0528-Qwen3-8B-GGUF:q4_k_m",
        "DeepSeek R1 0528 distilled into Qwen3 8B",
    ),
    CatalogEntry(
        "deepseek-r1:8b-llama",
        "hf:unsloth/DeepSeek-R1-Distill-Llama-8B-GGUF:q4_k_m",
        "DeepSeek R1 distilled into Llama 8B",
    ),
    # Llama
    CatalogEntry("llama3.2:1b", "hf:bartowski/Llama-3.2-1B-Instruct-GGUF:q4_k_m", "Llama 3.2 1B Instruct"),
    CatalogEntry("llama3.2:3b", "hf:bartowski/Llama-3.2-3B-Instruct-GGUF:q4_k_m", "Llama 3.2 3B Instruct"),
    CatalogEntry(
        "llama3.1:8b", "hf:bartowski/Meta-Llama-3.1-8B-Instruct-GGUF:q4_k_m", "Llama 3.1 8B Instruct"
    ),
    # Gemma
    CatalogEntry(
        "gemma3:270m-it", "hf:unsloth/gemma-3-270m-it-GGUF:q4_k_m", "Gemma 3 270M instruction-tuned"
    ),
    CatalogEntry("gemma3:1b", "hf:unsloth/gemma-3-1b-it-GGUF:q4_k_m", "Gemma 3 1B instruction-tuned"),
    CatalogEntry("gemma3:4b", "hf:unsloth/gemma-3-4b-it-GGUF:q4_k_m", "Gemma 3 4B instruction-tuned"),
    # Embeddings
    CatalogEntry(
        "nomic-embed-text:v1.5",
        "hf:nomic-ai/nomic-embed-text-v1.5-GGUF:q4_k_m",
        "Nomic Embed Text v1.5",
        True,
    ),
    CatalogEntry("bge-m3", "hf:gpustack/bge-m3-GGUF:q4_k_m", "BGE-M3 multilingual embeddings", True),
    CatalogEntry(
        "bge-small-en:v1.5", "hf:CompendiumLabs/bge-small-en-v1.5-gguf:q8_0", "BGE small English v1.5", True
    ),
    CatalogEntry(
        "qwen3-embedding:0.6b", "hf:Qwen/Qwen3-Embedding-0.6B-GGUF:q8_0", "Qwen3 Embedding 0.6B", True
    ),
)

_BY_NAME = {entry.name: entry for entry in CATALOG}


def entry(name: str) -> CatalogEntry | None:
    return _BY_NAME.get(name.strip().lower())


def lookup(name: str) -> Reference:
    """The reference behind a short name, or ``BadReference`` with the closest names."""
    from dataclasses import replace

    from lumbung.store.refs import parse_reference

    found = entry(name)
    if found is None:
        close = difflib.get_close_matches(name.lower(), list(_BY_NAME), n=3, cutoff=0.5)
        hint = (
            f" Did you mean {', '.join(close)}?"
            if close
            else " `lumbung pull --catalog` lists the short names."
        )
        raise BadReference(
            f"{name!r} is not a reference (hf:ORG/REPO, ms:ORG/REPO, file:/path.gguf) "
            f"nor a short name in the catalogue.{hint}"
        )
    return replace(parse_reference(found.reference), catalog_name=found.name)
