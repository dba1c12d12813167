"""Socket guards that prove "offline" means no network call at all."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

GUARD_DIR = Path(__file__).parent / "socket_guard"


@contextmanager
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """In this process: every connect and name lookup raises, and is recorded."""
    attempts: list[str] = []

    def refuse(what: str) -> Any:
        def guard(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{what} {args[1:] if what.startswith('socket.socket') else args!r}")
            raise ConnectionRefusedError(f"socket guard: {what} refused")

        return guard

    with monkeypatch.context() as m:
        m.setattr(socket.socket, "connect", refuse("socket.socket.connect"))
        m.setattr(socket.socket, "connect_ex", refuse("socket.socket.connect_ex"))
        m.setattr(socket, "create_connection", refuse("socket.create_connection"))
        m.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
        yield attempts


def guarded_env(log: Path) -> dict[str, str]:
    """Environment for a child process whose every outgoing connection is refused and logged."""
    import os

    path = os.pathsep.join(p for p in (str(GUARD_DIR), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "LUMBUNG_TEST_SOCKET_LOG": str(log)}
