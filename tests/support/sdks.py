"""Client SDKs that cannot share the test environment, installed once into a cache directory
(``~/.cache/lumbung-tests``, or ``$LUMBUNG_TEST_CACHE``) and run as child processes against lumbung.

- Vercel's AI SDK (``ai`` 6 with ``@ai-sdk/openai-compatible``) from npm: skipped where node is missing.
- instructor from PyPI, in a virtual environment of its own: every instructor release pins
  ``jiter<0.15`` while the ``openai`` SDK the rest of the tests use needs ``jiter>=0.16``, so in the test
  extra it would pull the whole suite back to an old ``openai``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.agents import Run, offline_env, run

NODE_PACKAGES = ["ai@6", "@ai-sdk/openai-compatible@2", "zod@4"]
PYTHON_PACKAGES = ["instructor>=1.17,<2"]


def cache_root() -> Path:
    root = os.environ.get("LUMBUNG_TEST_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "lumbung-tests"


def _installed(prefix: Path, marker: Path, install: list[list[str]]) -> Path:
    prefix.mkdir(parents=True, exist_ok=True)
    with (prefix.parent / f".{prefix.name}.lock").open("w") as lock:  # one install at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            for cmd in install:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
                if done.returncode != 0:
                    pytest.fail(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
            marker.write_text(" ".join(NODE_PACKAGES + PYTHON_PACKAGES))
    return prefix


def node_sdk() -> Path:
    """The directory whose ``node_modules`` holds the AI SDK (skips where node or npm is missing)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the Vercel AI SDK")
    prefix = cache_root() / "sdk-node"
    npm = ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix), *NODE_PACKAGES]
    return _installed(prefix, prefix / ".installed-ai6", [npm])


def run_node(script: str, *, env: dict[str, str], workdir: Path, timeout: float) -> Run:
    """Runs an ES module beside the installed packages (ESM resolves imports from the file's place)."""
    prefix = node_sdk()
    path = prefix / f"run-{uuid.uuid4().hex}.mjs"
    path.write_text(script)
    try:
        return run(
            ["node", str(path)], cwd=workdir, env=offline_env(workdir / "home", **env), timeout=timeout
        )
    finally:
        path.unlink()


def instructor_python() -> Path:
    """A Python with instructor (and the ``openai`` SDK it pins) in a virtual environment of its own."""
    prefix = cache_root() / "sdk-instructor"
    python = prefix / "bin" / "python"
    venv = [sys.executable, "-m", "venv", "--clear", str(prefix)]
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PYTHON_PACKAGES]
    _installed(prefix, prefix / ".installed", [venv, pip])
    return python


def run_python(python: Path, script: str, *, env: dict[str, str], workdir: Path, timeout: float) -> Run:
    path = workdir / "script.py"
    path.write_text(script)
    return run(
        [str(python), str(path)], cwd=workdir, env=offline_env(workdir / "home", **env), timeout=timeout
    )
