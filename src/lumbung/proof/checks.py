"""The per-request checks of a replay, as pure functions of the request and two answers.

Each check answers True (passed), False (failed) or None (does not apply to this request: a schema
check on a request that asked for no JSON, a tool-call check where no tool was offered).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import jsonschema

from lumbung.proof.answer import Answer, Call

# Answers that decline the task (the usual openings of a refusal, in English).
REFUSAL = re.compile(
    r"^\W*(i'?m sorry|i am sorry|sorry, (but )?i|i can(no|'?)t (help|assist|do|comply|provide)|"
    r"i am unable|i'?m unable|i will not|i won'?t|as an ai\b)",
    re.IGNORECASE,
)


def is_refusal(text: str) -> bool:
    return bool(REFUSAL.match(text.strip()))


def is_empty(answer: Answer) -> bool:
    return not answer.failed and not answer.text.strip() and not answer.calls


def response_schema(request: dict[str, Any]) -> tuple[str, dict[str, Any] | None] | None:
    """("json_schema", schema) or ("json_object", None) when the request asked for JSON, else None."""
    response_format = request.get("response_format")
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return "json_object", None
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return "json_schema", schema if isinstance(schema, dict) else {}
    return None


def parse_json(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except ValueError:
        return False, None


def valid_against(schema: dict[str, Any] | None, value: Any) -> bool:
    if schema is None:
        return True
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return False
    except jsonschema.SchemaError:
        return False  # a schema no validator accepts cannot be met
    return True


def json_checks(request: dict[str, Any], answer: Answer) -> tuple[bool | None, bool | None]:
    """(json_validity, schema_validity) of the answer's text."""
    asked = response_schema(request)
    if asked is None or answer.calls:
        return None, None
    ok, value = parse_json(answer.text)
    kind, schema = asked
    if kind == "json_object":
        return ok, None
    return ok, ok and valid_against(schema, value)


def tool_schemas(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The request's function tools: name -> parameters schema."""
    out = {}
    for tool in request.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            params = function.get("parameters")
            out[function["name"]] = params if isinstance(params, dict) else {}
    return out


def tool_validity(request: dict[str, Any], baseline: Answer, candidate: Answer) -> bool | None:
    """Every call the candidate made names an offered tool with arguments valid against its schema;
    a candidate that made no call where the baseline did fails."""
    tools = tool_schemas(request)
    if not tools or not (baseline.calls or candidate.calls):
        return None
    if baseline.calls and not candidate.calls:
        return False
    for call in candidate.calls:
        if call.name not in tools:
            return False
        ok, value = parse_json(call.arguments)
        if not ok or not isinstance(value, dict) or not valid_against(tools[call.name], value):
            return False
    return True


def normalise(value: Any) -> Any:
    """A JSON value with key order, number spelling (1, 1.0, 1e0) and whitespace in strings made
    irrelevant, so two calls that mean the same compare equal."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), normalise(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(normalise(v) for v in value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        number = float(value)
        return round(number, 9) if math.isfinite(number) else str(number)
    if isinstance(value, str):
        return " ".join(value.split())
    return value


def normalised_call(call: Call) -> tuple[str, Any]:
    ok, value = parse_json(call.arguments)
    return call.name, normalise(value) if ok else ("<invalid json>", " ".join(call.arguments.split()))


def tool_match(baseline: Answer, candidate: Answer) -> bool | None:
    """The same calls as the baseline (as a multiset: parallel calls may come in any order)."""
    if not (baseline.calls or candidate.calls):
        return None
    key = repr
    return sorted(map(key, map(normalised_call, baseline.calls))) == sorted(
        map(key, map(normalised_call, candidate.calls))
    )


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def rouge_l(reference: str, candidate: str) -> float:
    """ROUGE-L F1 over lower-cased words (longest common subsequence). Hand-written: the rouge-score
    package brings nltk and absl for these twenty lines."""
    ref, cand = _words(reference), _words(candidate)
    if not ref and not cand:
        return 1.0
    if not ref or not cand:
        return 0.0
    previous = [0] * (len(cand) + 1)
    for r in ref:
        current = [0]
        for j, c in enumerate(cand):
            current.append(previous[j] + 1 if r == c else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(cand), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0
