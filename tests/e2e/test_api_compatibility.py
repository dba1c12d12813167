"""Keeps docs/api-compatibility.md true: every parameter of OpenAI's schema is listed, and a real
server honours ("supported"/"accepted": 200) or refuses ("refused": 400 naming it) each one."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import ServerProcess

DOC = Path(__file__).resolve().parents[2] / "docs" / "api-compatibility.md"
SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "openai-schemas.json"


def doc_table(name: str) -> dict[str, str]:
    text = DOC.read_text()
    match = re.search(rf"<!-- table: {re.escape(name)} -->\n(.*?)<!-- end table -->", text, re.S)
    assert match, f"table {name} missing from {DOC.name}"
    rows = {}
    for line in match.group(1).splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[1]
    return rows


def schema_params(name: str) -> set[str]:
    schemas = json.loads(SCHEMAS.read_text())["schemas"]

    def props(schema: dict[str, Any]) -> set[str]:
        out: set[str] = set()
        for part in schema.get("allOf", [schema]):
            if "$ref" in part:
                out |= props(schemas[part["$ref"].split("/")[-1]])
            else:
                out |= set(part.get("properties", {}))
        return out

    return props(schemas[name])


BASE: dict[str, Any] = {
    "model": "gemma3:270m",
    "messages": [{"role": "user", "content": "Hi"}],
    "max_tokens": 2,
}

# A realistic value for each parameter (for "refused" ones: a value lumbung cannot honour).
CHAT_SAMPLES: dict[str, Any] = {
    "model": "gemma3:270m",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    "max_tokens": 3,
    "max_completion_tokens": 3,
    "temperature": 0.5,
    "top_p": 0.9,
    "seed": 7,
    "stop": ["\n\n"],
    "presence_penalty": 0.5,
    "frequency_penalty": 0.5,
    "stream": False,
    "stream_options": None,  # needs stream: tested in test_openai_errors
    "user": "u-1",
    "safety_identifier": "s-1",
    "metadata": {"k": "v"},
    "prompt_cache_key": "routing-v1",
    "prompt_cache_retention": "in_memory",
    "prompt_cache_options": {"ttl": "30m"},
    "service_tier": "auto",
    "n": 2,
    "logprobs": True,
    "top_logprobs": 2,
    "logit_bias": {"42": 5},
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "tool_choice": "none",  # others need tools: tests/e2e/test_tools_openai.py
    "parallel_tool_calls": False,
    "response_format": {"type": "json_object"},
    "modalities": ["text", "audio"],
    "audio": {"voice": "alloy", "format": "mp3"},
    "prediction": {"type": "content", "content": "x"},
    "store": True,
    "reasoning_effort": "low",
    "verbosity": "low",
    "web_search_options": {},
    "moderation": {"model": "omni-moderation-latest"},
    "functions": [{"name": "f", "parameters": {"type": "object"}}],
    "function_call": "auto",
}


def test_chat_table_lists_every_parameter_of_openais_schema() -> None:
    table = doc_table("chat.completions")
    assert set(table) == schema_params("CreateChatCompletionRequest")
    assert set(table.values()) <= {"supported", "accepted", "refused"}
    assert set(table) == set(CHAT_SAMPLES)


@pytest.mark.parametrize("param", sorted(CHAT_SAMPLES))
def test_chat_parameter_behaves_as_documented(server: ServerProcess, param: str) -> None:
    status = doc_table("chat.completions")[param]
    if CHAT_SAMPLES[param] is None:
        pytest.skip(f"{param} is covered by its own test")
    body = {**BASE, param: CHAT_SAMPLES[param]}
    if param == "top_logprobs":
        body["logprobs"] = True  # OpenAI refuses top_logprobs without it
    response = httpx.post(server.base_url + "/v1/chat/completions", json=body, timeout=60)
    if status == "refused":
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["param"] and error["param"].split(".")[0].split("[")[0] == param, error
        assert param in error["message"]
    else:
        assert response.status_code == 200, response.text
        assert response.json()["object"] == "chat.completion"
