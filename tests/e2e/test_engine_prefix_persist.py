"""The prefix cache survives a restart (`prefix_cache_persist_mb`): a long shared system prompt
served before a server stops is cached for the first request after it starts again; a file made
under other settings is refused and one cut short is ignored, each with a warning, and the server
starts cold."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.server import ServerProcess

Start = Callable[..., ServerProcess]
SYSTEM = "You are the dispatcher of a Jakarta logistics company. " + " ".join(
    f"Rule {i}: route parcel class {i} through hub {i % 7} unless the road is closed." for i in range(16)
)
CONFIG: dict[str, Any] = {
    "prefix_cache_persist_mb": 64,
    "prefix_cache_mb": 128,
    "parallel": 1,
    "context_size": 2048,
}


@pytest.fixture
def saved(lumbung_home: Path) -> Iterator[Path]:
    path = lumbung_home / "cache" / "prefix" / "smollm2_135m.kv"
    path.unlink(missing_ok=True)
    yield path
    path.unlink(missing_ok=True)


def ask(server: ServerProcess, question: str) -> int:
    """Cached prompt tokens of one request with the shared system prompt."""
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="none") as client:
        done = client.chat.completions.create(
            model="default",
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
            max_tokens=4,
            temperature=0,
        )
    assert done.usage is not None and done.usage.prompt_tokens > 300
    details = done.usage.prompt_tokens_details
    return details.cached_tokens or 0 if details else 0


def test_a_long_prefix_is_warm_after_a_restart(start_server: Start, saved: Path) -> None:
    first = start_server(config=CONFIG)
    assert ask(first, "Where does a class 3 parcel go?") == 0  # cold
    first.stop()
    assert saved.is_file() and saved.stat().st_size > 0
    again = start_server(config=CONFIG)
    assert ask(again, "And a class 5 parcel?") > 300, again.logs()[-3000:]  # the system prompt, from disk
    assert "cached prefix tokens restored" in again.logs()


def test_a_file_from_other_settings_is_refused_and_a_cut_one_ignored(
    start_server: Start, saved: Path
) -> None:
    first = start_server(config=CONFIG)
    ask(first, "Where does a class 3 parcel go?")
    first.stop()
    other = start_server(config={**CONFIG, "kv_cache_type": "q8_0"})
    assert ask(other, "And a class 5 parcel?") == 0
    refusal = next(line for line in other.logs().splitlines() if "refused: made for another" in line)
    assert "kv_type 'f16' here 'q8_0'" in refusal
    other.stop()  # saves its own (q8_0) entries over the file
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    cut = start_server(config={**CONFIG, "kv_cache_type": "q8_0"})
    assert ask(cut, "And a class 6 parcel?") == 0
    assert "ignored: it is cut short" in cut.logs()
