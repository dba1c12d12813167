"""Redaction rules on an exchange's dict: JSON paths replace whole values, patterns replace matches in
every string; what no rule names is left as it was."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from lumbung.config import RedactConfig
from lumbung.proof.redact import REDACTED, Redactor, parse_path


def exchange() -> dict[str, Any]:
    return {
        "id": "req-1",
        "request": {
            "user": "alice",
            "messages": [
                {"role": "system", "content": "You help alice@example.com"},
                {"role": "user", "content": "card 4111 1111 1111 1111", "name": "alice"},
            ],
            "metadata": {"customer": "c-9", "team": "ops"},
        },
        "response": {"choices": [{"message": {"content": "ok alice@example.com", "tool_calls": None}}]},
        "error": None,
    }


def test_paths_parse_into_keys_indices_and_wildcards() -> None:
    assert parse_path("$.request.messages[*].content") == ["request", "messages", -1, "content"]
    assert parse_path("response.choices[0].message") == ["response", "choices", 0, "message"]


def test_a_path_replaces_whole_values_and_leaves_the_rest() -> None:
    data = Redactor(["request.messages[1].name", "request.metadata.*", "request.missing.x"], []).apply(
        exchange()
    )
    assert data["request"]["messages"][1]["name"] == REDACTED
    assert data["request"]["metadata"] == {"customer": REDACTED, "team": REDACTED}
    assert data["request"]["messages"][0]["content"] == "You help alice@example.com"
    assert data["request"]["user"] == "alice"


def test_a_wildcard_index_reaches_every_item_and_none_stays_none() -> None:
    data = Redactor(["request.messages[*].content", "response.choices[*].message.tool_calls"], []).apply(
        exchange()
    )
    assert [m["content"] for m in data["request"]["messages"]] == [REDACTED, REDACTED]
    assert data["response"]["choices"][0]["message"]["tool_calls"] is None


def test_patterns_replace_matches_in_every_string_of_request_answer_and_error() -> None:
    data = exchange()
    data["error"] = "upstream said alice@example.com is blocked"
    redactor = Redactor([], [r"[\w.]+@[\w.]+", r"(?:\d{4} ?){4}"])
    out = redactor.apply(data)
    assert out["request"]["messages"][0]["content"] == f"You help {REDACTED}"
    assert out["request"]["messages"][1]["content"] == f"card {REDACTED}"
    assert out["response"]["choices"][0]["message"]["content"] == f"ok {REDACTED}"
    assert out["error"] == f"upstream said {REDACTED} is blocked"
    assert out["id"] == "req-1"


@pytest.mark.parametrize(("field", "value"), [("patterns", ["(unclosed"]), ("paths", ["request..x"])])
def test_invalid_rules_are_refused_when_settings_load(field: str, value: list[str]) -> None:
    with pytest.raises(ValidationError):
        RedactConfig.model_validate({field: value})
