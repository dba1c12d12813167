"""OpenAI Embeddings (``POST /v1/embeddings``) <-> core types, in pure functions."""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lumbung.engines.base import Embeddings
from lumbung.errors import InvalidRequest, UnsupportedParameter
from lumbung.surfaces.openai import validation_error
from lumbung.types import EmbeddingInputs

MAX_INPUTS = 2048  # OpenAI's limit per request


class EmbeddingRequestIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    model: Annotated[str, Field(min_length=1)]
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, Field(ge=1)] | None = None
    user: str | None = None


@dataclass(slots=True)
class EmbeddingCall:
    model: str
    inputs: EmbeddingInputs  # texts, or token ids (one list per input)
    encoding: str = "float"
    dimensions: int | None = None
    extra_fields: list[str] = field(default_factory=list)


def parse_embedding_request(body: bytes) -> EmbeddingCall:
    try:
        wire = EmbeddingRequestIn.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(exc) from exc
    raw = wire.input
    inputs: EmbeddingInputs
    if isinstance(raw, str):
        inputs = [raw]
    elif not raw:
        raise InvalidRequest("Invalid value for 'input': the list is empty.", param="input")
    elif all(isinstance(x, str) for x in raw):
        inputs = [x for x in raw if isinstance(x, str)]
    elif all(isinstance(x, int) for x in raw):  # one input as token ids
        inputs = [[x for x in raw if isinstance(x, int)]]
    else:  # several inputs as token ids (the wire model allows no mixture)
        inputs = [x for x in raw if isinstance(x, list)]
    if len(inputs) > MAX_INPUTS:
        raise InvalidRequest(f"Invalid 'input': at most {MAX_INPUTS} inputs per request.", param="input")
    return EmbeddingCall(
        model=wire.model,
        inputs=inputs,
        encoding=wire.encoding_format or "float",
        dimensions=wire.dimensions,
        extra_fields=sorted(wire.model_extra or {}),
    )


def check_dimensions(call: EmbeddingCall, result: Embeddings) -> None:
    """``dimensions`` is honoured only where it is the model's own size: shortening a vector is
    meaningful only for models trained for it (Matryoshka), which lumbung cannot tell."""
    native = len(result.vectors[0]) if result.vectors else 0
    if call.dimensions is not None and call.dimensions != native:
        raise UnsupportedParameter(
            f"Unsupported parameter: 'dimensions' must be {native} for this model: its embeddings "
            "cannot be shortened.",
            param="dimensions",
        )


def encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, as OpenAI sends it
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def embeddings_body(call: EmbeddingCall, model: str, result: Embeddings) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(v, call.encoding)}
            for i, v in enumerate(result.vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }
