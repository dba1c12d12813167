"""The recordings under HOME/recordings as a collection: what ``lumbung recordings`` lists, shows,
exports, imports into and removes."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lumbung.errors import RecordingError
from lumbung.proof.exchange import RECORDINGS_DIR, Exchange, read_exchanges, recording_path, write_exchanges
from lumbung.proof.redact import Redactor


@dataclass(slots=True)
class Summary:
    name: str
    path: Path
    exchanges: int = 0
    size: int = 0
    first: float | None = None
    last: float | None = None
    roles: Counter[str] = field(default_factory=Counter)
    failed: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "exchanges": self.exchanges,
            "bytes": self.size,
            "first": self.first,
            "last": self.last,
            "roles": dict(self.roles),
            "failed": self.failed,
        }


def summaries(home: Path) -> list[Summary]:
    folder = home / RECORDINGS_DIR
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.jsonl")):
        summary = Summary(path.stem, path, size=path.stat().st_size)
        for exchange in load_path(path):
            summary.exchanges += 1
            summary.roles[exchange.role] += 1
            summary.failed += exchange.response is None
            if exchange.created:
                summary.first = min(summary.first or exchange.created, exchange.created)
                summary.last = max(summary.last or exchange.created, exchange.created)
        out.append(summary)
    return out


def path_of(home: Path, name: str) -> Path:
    path = recording_path(home, name)
    if not path.is_file():
        known = ", ".join(s.name for s in summaries(home)) or "none yet"
        raise RecordingError(f"no recording {name!r} (recordings: {known})")
    return path


def load_path(path: Path) -> Iterator[Exchange]:
    try:
        yield from read_exchanges(path)
    except (OSError, ValueError, TypeError) as exc:
        raise RecordingError(f"{path}: cannot be read as a recording ({exc})") from exc


def load(home: Path, name: str) -> list[Exchange]:
    return list(load_path(path_of(home, name)))


def remove(home: Path, name: str) -> Path:
    path = path_of(home, name)
    path.unlink()
    return path


def openai_lines(exchanges: list[Exchange]) -> Iterator[str]:
    """The OpenAI-format JSONL that ``lumbung recordings import`` reads back (request + response)."""
    for exchange in exchanges:
        line: dict[str, Any] = {"id": exchange.id, "request": exchange.request, "response": exchange.response}
        if exchange.group:
            line["group"] = exchange.group
        yield json.dumps(line, ensure_ascii=False, separators=(",", ":"))


def save(home: Path, name: str, exchanges: list[Exchange], redactor: Redactor, *, replace: bool) -> Path:
    """A new recording ``name`` holding ``exchanges`` (redacted), written atomically."""
    path = recording_path(home, name)
    if path.exists() and not replace:
        raise RecordingError(f"recording {name!r} exists ({path}); pass --replace to overwrite it")
    redacted = [Exchange(**redactor.apply(asdict(e))) for e in exchanges] if redactor.active else exchanges
    write_exchanges(path, redacted)
    path.chmod(0o600)
    return path
