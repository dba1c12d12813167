"""Loaded into a child process through PYTHONPATH: every outgoing connection or name lookup is
refused and written to $LUMBUNG_TEST_SOCKET_LOG (an audit hook: it sees every library's sockets)."""

import os
import sys

_LOG = os.environ.get("LUMBUNG_TEST_SOCKET_LOG")


def _guard(event: str, args: tuple) -> None:
    if _LOG and event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
        with open(_LOG, "a") as log:
            log.write(f"{event} {args[1:]!r}\n")
        raise ConnectionRefusedError(f"socket guard: {event} refused (the process must be offline)")


if _LOG:
    sys.addaudithook(_guard)
