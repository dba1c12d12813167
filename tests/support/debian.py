"""Servers a test needs (Redis, PostgreSQL, Chromium) from Debian's packages: found on the PATH (or
in PostgreSQL's versioned bin folder), else installed with apt-get; a test is skipped only where no
package manager exists. Installs are serialised across test processes by a file lock."""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

_LOCK = Path("/tmp/lumbung-tests-apt.lock")
_EXTRA_DIRS = ("/usr/lib/postgresql/*/bin", "/usr/sbin", "/usr/lib/chromium")


def _find(binary: str) -> str | None:
    found = shutil.which(binary)
    if found:
        return found
    for pattern in _EXTRA_DIRS:
        for folder in sorted(glob.glob(pattern), reverse=True):
            candidate = Path(folder) / binary
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None


def ensure(binary: str, package: str) -> str:
    """The path of ``binary``, installing Debian's ``package`` first if it is missing."""
    found = _find(binary)
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.skip(f"{binary} is not installed and there is no apt-get to install {package}")
    prefix = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if prefix is None:
        pytest.skip(f"{binary} is not installed and installing {package} needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with _LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _find(binary)
        if found:
            return found
        install = [*prefix, apt, "install", "-y", "-q", "--no-install-recommends", package]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run([*prefix, apt, "update", "-q"], env=env, capture_output=True, check=True)
            subprocess.run(install, env=env, capture_output=True, check=True)
    found = _find(binary)
    if found is None:
        raise RuntimeError(f"installed {package} but {binary} is still not found")
    return found
