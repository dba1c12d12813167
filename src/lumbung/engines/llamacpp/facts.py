"""What the APIs show about a model's file: its sha256 (Ollama's ``digest``) and whether its GGUF chat
template reasons (``<think>``, Ollama's ``thinking`` capability), kept after the model unloads.

Hashing a GGUF reads all of it (seconds for a 4 GB model), so it runs once per model in a background
thread, from its first load on (before that its path may still be in the making: the embedded model
is assembled on first use), and the APIs show it once known. The store's manifests already carry the
sha256 of what they hold, so stored models are not hashed again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any

from lumbung.errors import LumbungError
from lumbung.store.gguf_info import read_gguf

log = logging.getLogger(__name__)
_BLOCK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def template_reasons(path: Path) -> bool:
    """The GGUF's own chat template writes ``<think>`` blocks (DeepSeek R1, Qwen 3, QwQ)."""
    template = read_gguf(path).get("tokenizer.chat_template")
    return isinstance(template, str) and "<think>" in template


class FileFacts:
    """Facts per model id, each computed once in a daemon thread; ``get`` never waits for them."""

    def __init__(self) -> None:
        self._facts: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, model_id: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._facts.get(model_id, {}))

    def learn(self, model_id: str, path: Path, *, digest_known: bool) -> None:
        """Start learning the facts of ``model_id``'s file, unless already started."""
        with self._lock:
            if model_id in self._facts:
                return
            facts: dict[str, Any] = {}
            self._facts[model_id] = facts
        args = (facts, path, digest_known)
        threading.Thread(target=self._learn, args=args, name=f"facts-{model_id}", daemon=True).start()

    def _learn(self, facts: dict[str, Any], file: Path, digest_known: bool) -> None:
        try:
            found: dict[str, Any] = {"thinking": template_reasons(file)}
            if not digest_known:
                found["digest"] = file_sha256(file)
        except (OSError, LumbungError) as exc:  # a missing file: loading it will say so
            log.info("model file facts unavailable: %s", exc)
            return
        with self._lock:
            facts.update(found)
