"""A throwaway PostgreSQL server for tests: Debian's PostgreSQL (installed when missing), a cluster in
a temporary folder on a free port of 127.0.0.1, stopped and removed after the session. Each test gets a
database of its own (``postgres_url``).

initdb refuses to run as root, and tests run as root in CI containers: the cluster is then made and
run as the unprivileged ``postgres`` user (made by Debian's package), owning its folder.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.debian import ensure

_names = itertools.count()


@dataclass
class PostgresServer:
    bin: Path
    port: int
    user: str | None  # the system user the server runs as (None: this process's)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]], user=self.user, capture_output=True, text=True, check=True
        )

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        name = f"lumbung_test_{os.getpid()}_{next(_names)}"
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    pytest.importorskip("asyncpg")
    # The versioned folder (a symlink on the PATH may point there): initdb, pg_ctl, createdb together.
    bin_dir = Path(ensure("pg_ctl", "postgresql")).resolve().parent
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run PostgreSQL as")
        user = "postgres"
    folder = Path(tempfile.mkdtemp(prefix="lumbung-pg-"))
    if user is not None:
        shutil.chown(folder, user)
    data = folder / "data"
    server = PostgresServer(bin_dir, _free_port(), user)
    server.run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    options = f"-p {server.port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    server.run("pg_ctl", "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start")
    try:
        yield server
    finally:
        subprocess.run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            user=user,
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A new, empty database on the session's server, as an SQLAlchemy URL (asyncpg)."""
    return postgres_server.new_database()
