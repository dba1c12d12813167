"""One recorded request and its answer, the unit that recording, import, shadowing and replay share.

A recording is a JSON Lines file: one ``Exchange`` per line, written by recording (the gateway's
live traffic), import (OpenAI-format JSONL or Batch API files) or shadowing (``role`` tells the live
answer from the candidate's), read by replay and the report. ``request`` is always a chat completions
request body and ``response`` a ``chat.completion`` object (OpenAI's wire shapes; a streamed answer is
reassembled into one), whatever surface the request came in on, so a replay can send it anywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RECORDINGS_DIR = "recordings"  # under the data directory: one NAME.jsonl per recording


@dataclass(slots=True)
class Exchange:
    id: str
    request: dict[str, Any]  # chat completions request body (redacted where rules say so)
    response: dict[str, Any] | None  # chat.completion object; None when the request failed
    created: float = 0.0  # unix time the request arrived
    surface: str = "openai"  # the API it came in on: openai, anthropic, ollama, responses, import
    route: str | None = None  # the model name the client asked for (a route or a model)
    provider: str | None = None  # the target that answered
    key: str | None = None  # the virtual key's id (never the secret)
    stream: bool = False
    latency_ms: float | None = None
    ttft_ms: float | None = None
    error: str | None = None  # error code when it failed
    group: str | None = None  # a label to group requests by in the report (e.g. an app or a task)
    role: str = "recorded"  # recorded | imported | shadow-live | shadow-candidate
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Exchange:
        data = json.loads(line)
        if not isinstance(data, dict) or "id" not in data or "request" not in data:
            raise ValueError("not an exchange: a JSON object with 'id' and 'request' is expected")
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


def file_name(name: str) -> str:
    """A recording's file name for any route or key name (``qwen2.5:7b`` -> ``qwen2.5_7b``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "_"


def recording_path(home: Path, name: str) -> Path:
    return home / RECORDINGS_DIR / f"{file_name(name)}.jsonl"


def read_exchanges(path: Path) -> Iterator[Exchange]:
    """The exchanges of a recording file, in order; a torn last line (a crash mid-write) is skipped."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            if line.strip():
                yield Exchange.from_json(line)


def write_exchanges(path: Path, exchanges: Iterable[Exchange]) -> int:
    """Write a whole recording atomically (a temporary file renamed over the target)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    count = 0
    with tmp.open("w", encoding="utf-8") as f:
        for exchange in exchanges:
            f.write(exchange.to_json() + "\n")
            count += 1
    tmp.replace(path)
    return count
