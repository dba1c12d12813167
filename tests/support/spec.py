"""Validates lumbung's answers against OpenAI's published OpenAPI description (../shared/spec)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

# Made from ../shared/spec/openai-openapi.yaml by scripts/vendor-openai-schemas (prose removed).
SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "openai-schemas.json"


def _fix(node: Any) -> Any:
    """OpenAPI 3.0 leftovers -> JSON Schema: ``nullable: true`` becomes a null type; refs re-pointed."""
    if isinstance(node, dict):
        out = {k: _fix(v) for k, v in node.items() if k != "nullable"}
        if isinstance(out.get("$ref"), str):
            out["$ref"] = out["$ref"].replace("#/components/schemas/", "#/$defs/")
        if node.get("nullable") is True:
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
            if "type" in out and isinstance(out["type"], str):
                out["type"] = [out["type"], "null"]
            else:
                out = {"anyOf": [out, {"type": "null"}]}
        for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if isinstance(out.get(bound), bool):  # 3.0 style: a flag on minimum/maximum
                flag = out.pop(bound)
                if flag and limit in out:
                    out[bound] = out.pop(limit)
        return out
    if isinstance(node, list):
        return [_fix(v) for v in node]
    return node


@functools.cache
def _schemas() -> dict[str, Any]:
    return _fix(json.loads(SCHEMAS.read_text())["schemas"])  # type: ignore[no-any-return]


def schema(name: str) -> dict[str, Any]:
    return _schemas()[name]  # type: ignore[no-any-return]


def validate(instance: Any, name: str) -> None:
    """Raise jsonschema.ValidationError unless ``instance`` matches OpenAI's schema ``name``."""
    validator = jsonschema.Draft202012Validator({"$defs": _schemas(), "$ref": f"#/$defs/{name}"})
    validator.validate(instance)
