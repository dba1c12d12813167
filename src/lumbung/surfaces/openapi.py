"""``GET /openapi.json``: lumbung's HTTP API described from the wire models the surfaces validate
with, so the description cannot drift from what is accepted. Request bodies are the pydantic models'
JSON Schemas; answers are described by their status codes, media types and error envelopes (each API
its own). Tools (schemathesis in tests/unit/test_openapi_fuzz.py, client generators) read it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lumbung import __version__
from lumbung.surfaces.anthropic_wire import CountTokensIn, MessagesRequestIn
from lumbung.surfaces.ollama_wire import ChatIn, EmbeddingsIn, EmbedIn, GenerateIn, ShowIn
from lumbung.surfaces.openai_completions import CompletionRequestIn
from lumbung.surfaces.openai_embeddings import EmbeddingRequestIn
from lumbung.surfaces.openai_responses_wire import CreateResponseIn
from lumbung.surfaces.openai_wire import ChatCompletionRequestIn
from lumbung.surfaces.openapi_answers import WHOLE_ANSWERS

REF = "#/components/schemas/{model}"
JSON = "application/json"
SSE = "text/event-stream"
NDJSON = "application/x-ndjson"

_ENVELOPES: dict[str, dict[str, Any]] = {
    "OpenAIError": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                    "code": {"type": ["string", "null"]},
                },
            }
        },
    },
    "AnthropicError": {
        "type": "object",
        "required": ["type", "error"],
        "properties": {
            "type": {"const": "error"},
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "OllamaError": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
}
_ERROR_STATUSES = {
    "400": "Invalid request (the message names what)",
    "401": "No API key, or an unknown one",
    "403": "The key may not do this, or the egress policy forbids the route",
    "404": "Unknown model or object",
    "413": "Request body over the limit",
    "429": "Rate limited or queue full (Retry-After)",
    "502": "Every upstream target failed",
    "503": "Overloaded or loading (Retry-After)",
    "504": "Upstream timed out",
}
_BODIES: list[type[BaseModel]] = [
    ChatCompletionRequestIn,
    CompletionRequestIn,
    EmbeddingRequestIn,
    CreateResponseIn,
    MessagesRequestIn,
    CountTokensIn,
    ChatIn,
    GenerateIn,
    EmbedIn,
    EmbeddingsIn,
    ShowIn,
]
_ANTHROPIC_VERSION = {
    "name": "anthropic-version",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "enum": ["2023-06-01"]},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


# OpenAPI 3.1 reads an event stream's schema as that of each event; every event carries JSON data
# (OpenAI's last is the text `[DONE]`).
_SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
}
_OK_SCHEMAS = {JSON: {"type": "object"}, SSE: _SSE_EVENT, NDJSON: {"type": "string"}}


def _answers(error: str, *media: str, errors: tuple[str, ...] = tuple(_ERROR_STATUSES)) -> dict[str, Any]:
    ok = {kind: {"schema": _OK_SCHEMAS[kind]} for kind in media}
    out: dict[str, Any] = {"200": {"description": "The answer", "content": ok}}
    for status in errors:
        out[status] = {"description": _ERROR_STATUSES[status], "content": {JSON: {"schema": _ref(error)}}}
    return out


def _post(
    summary: str,
    body: dict[str, str],
    error: str,
    *media: str,
    tag: str,
    headers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "requestBody": {"required": True, "content": {JSON: {"schema": body}}},
        "responses": _answers(error, *media),
    }
    if headers:
        operation["parameters"] = headers
    return {"post": operation}


def _get(summary: str, error: str, *, tag: str, errors: tuple[str, ...] = ("401",)) -> dict[str, Any]:
    return {"summary": summary, "tags": [tag], "responses": _answers(error, JSON, errors=errors)}


def _path_param(name: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}]


def _paths(refs: dict[type[BaseModel], dict[str, str]]) -> dict[str, Any]:
    """``refs``: each request model's reference in the components (pydantic names them)."""
    oai, ant, oll = "OpenAIError", "AnthropicError", "OllamaError"
    by_id = ("401", "404")
    return {
        "/v1/chat/completions": _post(
            "Chat completion", refs[ChatCompletionRequestIn], oai, JSON, SSE, tag="OpenAI"
        ),
        "/v1/completions": _post("Completion", refs[CompletionRequestIn], oai, JSON, SSE, tag="OpenAI"),
        "/v1/embeddings": _post("Embeddings", refs[EmbeddingRequestIn], oai, JSON, tag="OpenAI"),
        "/v1/responses": _post("Create a response", refs[CreateResponseIn], oai, JSON, SSE, tag="OpenAI"),
        "/v1/responses/{response_id}": {
            "get": {
                **_get("A stored response", oai, tag="OpenAI", errors=by_id),
                "parameters": _path_param("response_id"),
            },
            "delete": {
                **_get("Delete a stored response", oai, tag="OpenAI", errors=by_id),
                "parameters": _path_param("response_id"),
            },
        },
        "/v1/responses/{response_id}/input_items": {
            "get": {
                **_get("A stored response's input items", oai, tag="OpenAI", errors=("400", "401", "404")),
                "parameters": _path_param("response_id"),
            }
        },
        "/v1/models": {"get": _get("Models and routes", oai, tag="OpenAI")},
        "/v1/models/{model}": {
            "get": {**_get("One model", oai, tag="OpenAI", errors=by_id), "parameters": _path_param("model")}
        },
        "/v1/messages": _post(
            "Messages", refs[MessagesRequestIn], ant, JSON, SSE, tag="Anthropic", headers=[_ANTHROPIC_VERSION]
        ),
        "/v1/messages/count_tokens": _post(
            "Count tokens", refs[CountTokensIn], ant, JSON, tag="Anthropic", headers=[_ANTHROPIC_VERSION]
        ),
        "/api/chat": _post("Chat", refs[ChatIn], oll, JSON, NDJSON, tag="Ollama"),
        "/api/generate": _post("Generate", refs[GenerateIn], oll, JSON, NDJSON, tag="Ollama"),
        "/api/embed": _post("Embed", refs[EmbedIn], oll, JSON, tag="Ollama"),
        "/api/embeddings": _post("Embeddings (legacy)", refs[EmbeddingsIn], oll, JSON, tag="Ollama"),
        "/api/show": _post("Show a model", refs[ShowIn], oll, JSON, tag="Ollama"),
        "/api/tags": {"get": _get("Local models", oll, tag="Ollama")},
        "/api/ps": {"get": _get("Loaded models", oll, tag="Ollama")},
        "/api/version": {"get": _get("Version", oll, tag="Ollama", errors=())},
        "/": {
            "get": {
                "summary": "Ollama is running (what Ollama answers here; clients probe it)",
                "tags": ["Ollama"],
                "responses": {
                    "200": {
                        "description": "Running",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/health": {
            "get": {
                "summary": "Ready (200) or still loading (503)",
                "tags": ["lumbung"],
                "responses": {
                    "200": {"description": "Ready", "content": {JSON: {"schema": {"type": "object"}}}},
                    "503": {"description": "Loading", "content": {JSON: {"schema": {"type": "object"}}}},
                },
            }
        },
    }


def _with_answers(paths: dict[str, Any]) -> dict[str, Any]:
    for path, schema in WHOLE_ANSWERS.items():
        paths[path]["post"]["responses"]["200"]["content"][JSON]["schema"] = schema
    return paths


@cache
def document() -> dict[str, Any]:
    refs, defs = models_json_schema([(model, "validation") for model in _BODIES], ref_template=REF)
    schemas = {**defs.get("$defs", {}), **_ENVELOPES}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lumbung",
            "version": __version__,
            "description": "OpenAI, Anthropic and Ollama APIs over local and upstream models.",
        },
        "paths": _with_answers(_paths({model: refs[(model, "validation")] for model in _BODIES})),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
        # Keys are needed only when the server is configured with some (`api_keys`).
        "security": [{}, {"bearer": []}, {"x-api-key": []}],
    }


async def openapi(request: Request) -> Response:
    return JSONResponse(document())
