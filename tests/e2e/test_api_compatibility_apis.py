"""Keeps the completions, embeddings, Responses, Anthropic and Ollama tables of
docs/api-compatibility.md true: each lists every parameter of the API (OpenAI's published schema, or
the official SDK's request type), and a real server honours ("supported"/"accepted": 200) or refuses
("refused": 400 naming it) each one, in that API's own error envelope."""

from __future__ import annotations

import re
from typing import Any

import anthropic.types.message_create_params as anthropic_params
import httpx
import ollama._types as ollama_types
import pytest

from tests.e2e.test_api_compatibility import doc_table, schema_params
from tests.support.server import ServerProcess

TOOL_FN = {"name": "f", "description": "d", "parameters": {"type": "object"}}

# Each parameter's sample is a patch over the base body: a realistic value (for "refused" ones, a value
# lumbung cannot honour), with what it needs alongside (tools with tool_choice none: no engine needed).
COMPLETIONS: dict[str, dict[str, Any]] = {
    "model": {"model": "gemma3:270m"},
    "prompt": {"prompt": ["Once", "Twice"]},
    "max_tokens": {"max_tokens": 3},
    "temperature": {"temperature": 0.5},
    "top_p": {"top_p": 0.9},
    "n": {"n": 2},
    "best_of": {"best_of": 1},
    "echo": {"echo": True},
    "stop": {"stop": ["\n"]},
    "seed": {"seed": 3},
    "presence_penalty": {"presence_penalty": 1},
    "frequency_penalty": {"frequency_penalty": 1},
    "stream": {"stream": False},
    "stream_options": {"stream": True, "stream_options": {"include_usage": True}},
    "user": {"user": "u"},
    "logprobs": {"logprobs": 2},
    "logit_bias": {"logit_bias": {"5": 1}},
    "suffix": {"suffix": "end"},
}
EMBEDDINGS: dict[str, dict[str, Any]] = {
    "model": {"model": "gemma3:270m"},
    "input": {"input": ["a", "b"]},
    "encoding_format": {"encoding_format": "base64"},
    "dimensions": {"dimensions": 640},
    "user": {"user": "u"},
}
RESPONSES: dict[str, dict[str, Any]] = {
    "model": {"model": "gemma3:270m"},
    "input": {"input": [{"role": "user", "content": "Hi"}]},
    "instructions": {"instructions": "Be brief."},
    "max_output_tokens": {"max_output_tokens": 3},
    "temperature": {"temperature": 0.5},
    "top_p": {"top_p": 0.9},
    "tools": {"tools": [{"type": "function", **TOOL_FN}], "tool_choice": "none"},
    "tool_choice": {"tool_choice": "auto"},
    "parallel_tool_calls": {"parallel_tool_calls": False},
    "text": {"text": {"format": {"type": "text"}}},
    "stream": {"stream": True},
    "stream_options": {"stream": True, "stream_options": {"include_obfuscation": False}},
    "store": {"store": False},
    "previous_response_id": {},
    "metadata": {"metadata": {"k": "v"}},
    "truncation": {"truncation": "disabled"},
    "service_tier": {"service_tier": "auto"},
    "include": {"include": ["reasoning.encrypted_content"]},
    "max_tool_calls": {"max_tool_calls": 3},
    "user": {"user": "u"},
    "safety_identifier": {"safety_identifier": "s"},
    "prompt_cache_key": {"prompt_cache_key": "k"},
    "prompt_cache_retention": {"prompt_cache_retention": "24h"},
    "prompt_cache_options": {"prompt_cache_options": {"ttl": "1h"}},
    "top_logprobs": {"top_logprobs": 2},
    "reasoning": {"reasoning": {"effort": "low"}},
    "background": {"background": True},
    "conversation": {"conversation": "conv_1"},
    "prompt": {"prompt": {"id": "pmpt_1"}},
    "context_management": {"context_management": [{"type": "compaction"}]},
    "moderation": {"moderation": {"model": "omni-moderation-latest"}},
}
ANTHROPIC: dict[str, dict[str, Any]] = {
    "model": {"model": "gemma3:270m"},
    "messages": {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]},
    "max_tokens": {"max_tokens": 3},
    "system": {"system": [{"type": "text", "text": "Be brief."}]},
    "stop_sequences": {"stop_sequences": ["\n"]},
    "stream": {"stream": True},
    "temperature": {"temperature": 0.5},
    "top_p": {"top_p": 0.9},
    "top_k": {"top_k": 5},
    "tools": {"tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": {"type": "none"}},
    "tool_choice": {"tool_choice": {"type": "auto"}},
    "output_config": {"output_config": {"effort": "high"}},
    "service_tier": {"service_tier": "standard_only"},
    "speed": {"speed": "standard"},
    "thinking": {"thinking": {"type": "adaptive"}},
    "context_management": {
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}
    },
    "metadata": {"metadata": {"user_id": "u"}},
    "cache_control": {"cache_control": {"type": "ephemeral"}},
    "diagnostics": {"diagnostics": {}},
    "user_profile_id": {"user_profile_id": "p"},
    "workspace_id": {"workspace_id": "w"},
    "container": {"container": "c"},
    "inference_geo": {"inference_geo": "us"},
    "mcp_servers": {"mcp_servers": [{"type": "url", "url": "http://127.0.0.1:1", "name": "x"}]},
}
OLLAMA_CHAT: dict[str, dict[str, Any]] = {
    "model": {"model": "gemma3:270m"},
    "messages": {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]},
    "tools": {"tools": [{"type": "function", "function": TOOL_FN}]},
    "format": {"format": "json"},
    "options": {"options": {"num_predict": 2, "temperature": 0.1}},
    "stream": {"stream": True},
    "keep_alive": {"keep_alive": "-1m"},  # negative: forever, the shared server's own keep-alive
    "think": {"think": False},
    "logprobs": {"logprobs": True},
    "top_logprobs": {"logprobs": True, "top_logprobs": 2},
}
OLLAMA_GENERATE: dict[str, dict[str, Any]] = {
    "model": {"model": "gemma3:270m"},
    "prompt": {"prompt": "Hello"},
    "system": {"system": "Be brief."},
    "raw": {"raw": True},
    "format": {"format": {"type": "object"}},
    "options": {"options": {"seed": 1, "num_predict": 2}},
    "stream": {"stream": True},
    "keep_alive": {"keep_alive": -1},
    "think": {"think": True},
    "images": {"images": ["AA=="]},
    "suffix": {"suffix": "end"},
    "template": {"template": "{{ .Prompt }}"},
    "context": {"context": [1, 2]},
    "logprobs": {"logprobs": True},
    "top_logprobs": {"top_logprobs": 3},
    "width": {"width": 64},
    "height": {"height": 64},
    "steps": {"steps": 4},
}
OLLAMA_EMBED: dict[str, dict[str, Any]] = {
    "model": {"model": "gemma3:270m"},
    "input": {"input": ["a", "b"]},
    "dimensions": {"dimensions": 640},
    "truncate": {"truncate": True},
    "options": {"options": {"num_ctx": 512}},
    "keep_alive": {"keep_alive": "-1h"},
}
OPTION_VALUES: dict[str, Any] = {
    "temperature": 0.2,
    "top_k": 10,
    "top_p": 0.8,
    "min_p": 0.05,
    "seed": 5,
    "num_predict": 2,
    "stop": ["\n"],
    "repeat_penalty": 1.1,
    "presence_penalty": 0.5,
    "frequency_penalty": 0.5,
    "num_ctx": 1024,
    "num_keep": 4,
    "num_batch": 64,
    "num_thread": 2,
    "num_gpu": 0,
    "main_gpu": 0,
    "low_vram": True,
    "numa": False,
    "use_mmap": True,
    "use_mlock": False,
    "vocab_only": False,
    "logits_all": False,
    "embedding_only": False,
    "f16_kv": True,
    "repeat_last_n": 64,
    "typical_p": 0.7,
    "tfs_z": 0.5,
    "mirostat": 2,
    "mirostat_tau": 5.0,
    "mirostat_eta": 0.1,
    "penalize_newline": False,
}

# name: (doc table, samples, path, base body, the parameter list the API defines)
SURFACES: dict[str, tuple[str, dict[str, dict[str, Any]], str, dict[str, Any], set[str]]] = {
    "completions": (
        "completions",
        COMPLETIONS,
        "/v1/completions",
        {"model": "gemma3:270m", "prompt": "Hi", "max_tokens": 2},
        schema_params("CreateCompletionRequest"),
    ),
    "embeddings": (
        "embeddings",
        EMBEDDINGS,
        "/v1/embeddings",
        {"model": "gemma3:270m", "input": "Hi"},
        schema_params("CreateEmbeddingRequest"),
    ),
    "responses": (
        "responses",
        RESPONSES,
        "/v1/responses",
        {"model": "gemma3:270m", "input": "Hi", "max_output_tokens": 2},
        schema_params("CreateResponse"),
    ),
    "anthropic": (
        "anthropic.messages",
        ANTHROPIC,
        "/v1/messages",
        {"model": "gemma3:270m", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]},
        set(anthropic_params.MessageCreateParamsBase.__annotations__)
        | {"stream", "temperature", "top_p", "top_k", "mcp_servers", "context_management"},
    ),
    "ollama.chat": (
        "ollama.chat",
        OLLAMA_CHAT,
        "/api/chat",
        {
            "model": "gemma3:270m",
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": False,
            "options": {"num_predict": 2},
        },
        set(ollama_types.ChatRequest.model_fields),
    ),
    "ollama.generate": (
        "ollama.generate",
        OLLAMA_GENERATE,
        "/api/generate",
        {"model": "gemma3:270m", "prompt": "Hi", "stream": False, "options": {"num_predict": 2}},
        set(ollama_types.GenerateRequest.model_fields),
    ),
    "ollama.embed": (
        "ollama.embed",
        OLLAMA_EMBED,
        "/api/embed",
        {"model": "gemma3:270m", "input": "Hi"},
        set(ollama_types.EmbedRequest.model_fields),
    ),
}
CASES = [(surface, param) for surface, spec in SURFACES.items() for param in sorted(spec[1])]


@pytest.mark.parametrize("surface", sorted(SURFACES))
def test_table_lists_every_parameter_of_the_api(surface: str) -> None:
    table_name, samples, _, _, params = SURFACES[surface]
    table = doc_table(table_name)
    assert set(table) == params, set(table) ^ params
    assert set(table.values()) <= {"supported", "accepted", "refused"}
    assert set(samples) == params


def test_options_table_lists_every_option_of_the_client() -> None:
    table = doc_table("ollama.options")
    assert set(table) == set(ollama_types.Options.model_fields) | {"min_p"}
    assert set(OPTION_VALUES) == set(table)


def _error_text(surface: str, body: dict[str, Any]) -> str:
    if surface == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        return str(body["error"]["message"])
    if surface.startswith("ollama"):
        assert set(body) == {"error"}
        return str(body["error"])
    error = body["error"]
    assert error["type"] == "invalid_request_error" and error["param"]
    return f"{error['param']} {error['message']}"


def _check(
    server: ServerProcess, surface: str, path: str, body: dict[str, Any], status: str, param: str
) -> None:
    headers = {"anthropic-version": "2023-06-01"} if surface == "anthropic" else {}
    with httpx.stream("POST", server.base_url + path, json=body, headers=headers, timeout=120) as r:
        r.read()
    if status == "refused":
        assert r.status_code == 400, r.text
        assert param in _error_text(surface, r.json()), r.text
    else:
        assert r.status_code == 200, r.text
        # No error in the body or in the stream (a null "error" field is fine).
        assert not re.search(rb'"error":\s*[{"]|event: error|response\.failed', r.content), r.text


@pytest.mark.parametrize(("surface", "param"), CASES)
def test_parameter_behaves_as_documented(server: ServerProcess, surface: str, param: str) -> None:
    table_name, samples, path, base, _ = SURFACES[surface]
    status = doc_table(table_name)[param]
    body = {**base, **samples[param]}
    if surface == "responses" and param == "previous_response_id":
        first = httpx.post(server.base_url + path, json=base, timeout=120).json()
        body["previous_response_id"] = first["id"]
    _check(server, surface, path, body, status, param)


@pytest.mark.parametrize("option", sorted(OPTION_VALUES))
def test_ollama_option_behaves_as_documented(server: ServerProcess, option: str) -> None:
    status = doc_table("ollama.options")[option]
    options = {"num_predict": 2, option: OPTION_VALUES[option]}
    body = {
        "model": "gemma3:270m",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": False,
        "options": options,
    }
    _check(server, "ollama.chat", "/api/chat", body, status, option)
