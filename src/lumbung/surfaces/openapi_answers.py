"""The shape of each whole (non-streamed) answer in /openapi.json: the fields every client of that API
reads, required, with their types. Deliberately not every field: these are the API's own contracts,
which lumbung must keep, not a copy of its renderers."""

from __future__ import annotations

from typing import Any


def _object(required: dict[str, Any], **optional: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": {**required, **optional}}


_STR = {"type": "string"}
_INT = {"type": "integer", "minimum": 0}
_NUMBERS = {"type": "array", "items": {"type": "number"}}
_OPENAI_USAGE = _object({"prompt_tokens": _INT, "total_tokens": _INT}, completion_tokens=_INT)
_FINISH = {"type": ["string", "null"]}

WHOLE_ANSWERS: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": _object(
        {
            "id": _STR,
            "object": {"const": "chat.completion"},
            "created": _INT,
            "model": _STR,
            "choices": {
                "type": "array",
                "items": _object(
                    {
                        "index": _INT,
                        "message": _object({"role": {"const": "assistant"}}),
                        "finish_reason": _FINISH,
                    }
                ),
            },
        },
        usage=_OPENAI_USAGE,
    ),
    "/v1/completions": _object(
        {
            "id": _STR,
            "object": {"const": "text_completion"},
            "created": _INT,
            "model": _STR,
            "choices": {
                "type": "array",
                "items": _object({"index": _INT, "text": _STR, "finish_reason": _FINISH}),
            },
        },
        usage=_OPENAI_USAGE,
    ),
    "/v1/embeddings": _object(
        {
            "object": {"const": "list"},
            "model": _STR,
            "data": {
                "type": "array",
                "items": _object(
                    {
                        "object": {"const": "embedding"},
                        "index": _INT,
                        "embedding": {"anyOf": [_NUMBERS, _STR]},  # base64 when asked
                    }
                ),
            },
            "usage": _OPENAI_USAGE,
        }
    ),
    "/v1/responses": _object(
        {
            "id": _STR,
            "object": {"const": "response"},
            "created_at": {"type": "number"},
            "status": _STR,
            "model": _STR,
            "output": {"type": "array", "items": _object({"type": _STR})},
        }
    ),
    "/v1/messages": _object(
        {
            "id": _STR,
            "type": {"const": "message"},
            "role": {"const": "assistant"},
            "model": _STR,
            "content": {"type": "array", "items": _object({"type": _STR})},
            "stop_reason": {"type": ["string", "null"]},
            "usage": _object({"input_tokens": _INT, "output_tokens": _INT}),
        }
    ),
    "/v1/messages/count_tokens": _object({"input_tokens": _INT}),
    "/api/chat": _object(
        {
            "model": _STR,
            "created_at": _STR,
            "message": _object({"role": _STR, "content": _STR}),
            "done": {"type": "boolean"},
        }
    ),
    "/api/generate": _object(
        {"model": _STR, "created_at": _STR, "response": _STR, "done": {"type": "boolean"}}
    ),
    "/api/embed": _object({"model": _STR, "embeddings": {"type": "array", "items": _NUMBERS}}),
    "/api/embeddings": _object({"embedding": _NUMBERS}),
}
