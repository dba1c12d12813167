from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from tests.support.agents import SECRET
from tests.support.browser import chromium  # noqa: F401  (a fixture for the web pages' tests)
from tests.support.fake_upstream import FakeUpstream
from tests.support.postgres_server import postgres_server, postgres_url  # noqa: F401  (PostgreSQL tests)
from tests.support.redis_server import redis_server  # noqa: F401  (a real redis-server for a test)
from tests.support.server import ServerProcess

E2E = Path(__file__).parent / "e2e"
# Fixtures that load the real model (a server process, or llama.cpp reading its vocabulary): a test
# using one is marked ``e2e`` wherever it lives, so that ``pytest -m "not e2e"`` needs no model.
MODEL_FIXTURES = {"server", "start_server", "lumbung_home", "vocab", "compiler"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        under_e2e = item.path.is_relative_to(E2E)
        if under_e2e or MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def lumbung_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data directory for the session: the embedded model is assembled into it once."""
    return tmp_path_factory.mktemp("lumbung-home")


@pytest.fixture(scope="session")
def server(lumbung_home: Path) -> Iterator[ServerProcess]:
    """A `lumbung serve` process with the real embedded model, shared by the surface tests.

    Its prefix cache is off: llama.cpp's CPU kernels round differently for a cached prefix than for
    a recomputed one, and by where a sequence's cells sit in the cache (docs/performance.md,
    "Determinism"), so greedy text compares equal across requests only without it. The prefix cache
    has its own tests (tests/e2e/test_engine_*.py) on servers of their own.
    """
    proc = ServerProcess(lumbung_home, config={"prefix_cache_mb": 0}).start()
    yield proc
    proc.stop()


@pytest.fixture
def start_server(lumbung_home: Path, tmp_path: Path) -> Iterator[object]:
    """Factory for servers with their own config or environment; all are stopped after the test."""
    started: list[ServerProcess] = []

    def start(**kwargs: object) -> ServerProcess:
        kwargs.setdefault("log_dir", tmp_path)
        wait = bool(kwargs.pop("wait_ready", True))
        proc = ServerProcess(lumbung_home, **kwargs)  # type: ignore[arg-type]
        started.append(proc)
        return proc.start(wait_ready=wait)

    yield start
    for proc in started:
        proc.stop()


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)
Closing = Callable[[C], C]


@pytest.fixture
def closing() -> Iterator[Closing[Any]]:
    """Closes SDK clients after the test: an unclosed client's sockets raise ResourceWarning (an
    error here) in whichever later test the garbage collector finds them."""
    clients: list[_Closable] = []

    def register(client: C) -> C:
        clients.append(client)
        return client

    yield register
    for client in clients:
        client.close()


@pytest.fixture
def agent_project(tmp_path: Path) -> Path:
    """A coding agent's project directory with one file whose secret a tool round trip must carry."""
    path = tmp_path / "project"
    path.mkdir()
    (path / "notes.txt").write_text(f"The password is {SECRET}.\n")
    return path


@pytest.fixture
def scripted_provider() -> Iterator[FakeUpstream]:
    """A fake provider scripted as an agent's model: a tool call first, then text quoting its result."""
    upstream = FakeUpstream(name="scripted").start()
    yield upstream
    upstream.stop()
