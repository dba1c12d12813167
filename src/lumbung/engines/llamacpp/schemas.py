"""A client's JSON schema made ready for constrained decoding: what the grammar enforces, what is
checked after generation, and what is refused.

OpenAI enforces a schema only with ``strict: true``; without it the schema is guidance. So:

- strict: every keyword must be enforced by the grammar; one it cannot enforce is refused (400).
- not strict: the grammar enforces what it can (llguidance's ``lenient`` mode skips the rest), and the
  answer is validated against the whole schema once it is written (``AnswerCheck``); a violation is
  flagged in the log, and the answer returned as the model wrote it, as OpenAI does.
- either way: forms that every value satisfies (``propertyNames: {"type": "string"}``: JSON object keys
  are strings) are dropped before the grammar sees them; a schema no finite value can satisfy (a
  required property that refers back to its own definition) and one that is not a JSON schema at all
  are refused up front (400), as no answer could ever be valid.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import llguidance

from lumbung.errors import InvalidRequest, UnsupportedParameter
from lumbung.types import Chunk

log = logging.getLogger(__name__)

# Compact JSON: no free whitespace, so a small model cannot loop on newlines inside an object.
JSON_OPTIONS: Any = {"whitespace_flexible": False}
_UNIMPLEMENTED = re.compile(r"Unimplemented keys: \[([^\]]*)\]")
_ANNOTATIONS = {
    "title",
    "description",
    "$comment",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
}
# Keywords whose value is one subschema / a list of them / a name -> subschema mapping.
_ONE = (
    *("additionalProperties", "items", "contains", "propertyNames", "not", "if", "then", "else"),
    *("unevaluatedProperties", "unevaluatedItems", "additionalItems"),
)
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems")
_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
MAX_REASON = 200  # characters of a compiler message shown to the client or written to the log


def brief(message: str) -> str:
    """A compiler message on one line, bounded (it may quote the client's schema at length)."""
    line = " ".join(" ".join(message.strip().splitlines()[:3]).split()) or "unknown error"
    return line if len(line) <= MAX_REASON else line[:MAX_REASON] + "..."


# llguidance's words for hitting one of its limits (never a client's names, which errors may quote).
_TOO_COMPLEX = re.compile(r"TooComplex|Too many|too many|fuel|limit \d|\(limit|max_[a-z_]+|too large|too big")


def client_reason(error: str) -> str:
    """A compiler or matcher error in the client's terms: never llguidance's internal limits by name
    (a client cannot change them), and bounded (the message may quote the grammar)."""
    if _TOO_COMPLEX.search(error):
        return "the schema is too complex to follow while writing (deep recursion or a very large pattern)"
    return brief(error.split("Error:", 1)[-1]) if error else "the answer left the schema"


def _validator(schema: dict[str, Any]) -> type[Any]:
    with warnings.catch_warnings():  # an unknown "$schema": the latest draft, without a warning
        warnings.simplefilter("ignore", DeprecationWarning)
        return jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)  # type: ignore[no-any-return]


@dataclass(slots=True)
class Prepared:
    """One schema as the grammar gets it, and what the grammar leaves to the check after generation."""

    schema: dict[str, Any]  # for the grammar: always-true forms dropped (or a weaker fallback)
    original: dict[str, Any]  # what the answer is validated against
    strict: bool
    unenforced: list[str] = field(default_factory=list)  # keywords (or "schema") the grammar skips


def prepare(schema: dict[str, Any], *, strict: bool, where: str) -> Prepared:
    """Check ``schema`` and split it into what the grammar enforces and what is checked afterwards."""
    _check_is_schema(schema, where)
    _check_finite(schema, where)
    misread: list[str] = []
    cleaned = drop_always_true(schema, misread)
    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(cleaned, defaults=JSON_OPTIONS)
        error = llguidance.LLMatcher.validate_grammar(grammar)
    except ValueError as exc:
        error = str(exc)
    if (not error or error.startswith("WARNING")) and misread:
        error = "Unimplemented keys: [" + ", ".join(f'"{k}"' for k in misread) + "]"
    if not error or error.startswith("WARNING"):
        return Prepared(cleaned, schema, strict)
    if "Unsatisfiable" in error:
        raise no_valid_value(where, error)
    found = _UNIMPLEMENTED.search(error)
    keys = [k.strip().strip('"') for k in found.group(1).split(",") if k.strip()] if found else []
    keys += [k for k in misread if found and k not in keys]
    if strict:
        if keys:
            raise UnsupportedParameter(
                f"Unsupported schema keyword(s) in '{where}': {', '.join(keys)}. With 'strict': true "
                "lumbung enforces the schema while the answer is written and refuses keywords it "
                "cannot enforce; without 'strict' they are checked after generation instead.",
                param=where,
            )
        raise UnsupportedParameter(
            f"The schema in '{where}' cannot be enforced: {client_reason(error)}", param=where
        )
    if keys:
        return Prepared(cleaned, schema, strict, keys)
    # Not strict, and the grammar compiler cannot read it (a remote $ref, a look-around pattern):
    # constrain the answer to the schema's type only, and check the rest afterwards.
    kind = schema.get("type")
    fallback = {"type": kind} if isinstance(kind, str) and kind in _TYPES else {}
    log.info("schema in %s not compiled (%s); constraining to %s", where, brief(error), fallback or "JSON")
    return Prepared(fallback, schema, strict, ["schema"])


def no_valid_value(where: str, error: str) -> InvalidRequest:
    reason = brief(error.split("Unsatisfiable schema:", 1)[-1])
    return InvalidRequest(f"The schema in '{where}' has no valid value: {reason}", param=where)


def _check_is_schema(schema: dict[str, Any], where: str) -> None:
    try:
        _validator(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        at = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise InvalidRequest(
            f"Invalid schema for '{where}': at {at}: {brief(exc.message)}", param=where
        ) from exc


# --- forms every value satisfies --------------------------------------------------------------


def _always_true(keyword: str, value: Any) -> bool:
    if keyword == "propertyNames":  # object keys are strings: only a string constraint can fail
        return value is True or (
            isinstance(value, dict)
            and set(value) - _ANNOTATIONS <= {"type"}
            and value.get("type", "string") == "string"
        )
    if keyword == "uniqueItems":
        return value is False
    if keyword == "minContains":
        return bool(value == 0)
    return False


def _misread(node: dict[str, Any]) -> list[str]:
    """Keywords the grammar compiler accepts but enforces wrongly here (found by the property test in
    tests/unit/test_engine_schemas.py): treated as ones it cannot enforce.

    llguidance's ``minProperties`` refuses valid objects once the schema declares optional properties,
    and it refuses ``maxProperties`` there with a message of its own: both are named as keywords.
    """
    props = node.get("properties")
    optional = isinstance(props, dict) and set(props) - set(node.get("required", []))
    return [k for k in ("minProperties", "maxProperties") if k in node] if optional else []


def drop_always_true(schema: Any, misread: list[str] | None = None) -> Any:
    """A copy of ``schema`` without the keywords that no value can fail (see ``_always_true``), and
    without those the compiler would enforce wrongly (named in ``misread``)."""
    if not isinstance(schema, dict):
        return schema
    wrong = _misread(schema)
    if misread is not None:
        misread += [k for k in wrong if k not in misread]
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if _always_true(key, value) or key in wrong:
            continue
        if key in _ONE:
            out[key] = drop_always_true(value, misread)
        elif key in _MANY and isinstance(value, list):
            out[key] = [drop_always_true(v, misread) for v in value]
        elif key in _MAPS and isinstance(value, dict):
            out[key] = {name: drop_always_true(v, misread) for name, v in value.items()}
        else:
            out[key] = value
    if schema.get("minContains") == 0 and "maxContains" not in out:
        out.pop("contains", None)  # at least zero matches: contains constrains nothing
    return out


# --- schemas no finite value satisfies ----------------------------------------------------------


def _resolve(root: dict[str, Any], ref: str) -> Any:
    """A local ``$ref`` ("#", "#/$defs/a"); None when it is not a local JSON pointer."""
    if not ref.startswith("#") or (len(ref) > 1 and not ref.startswith("#/")):
        return None
    node: Any = root
    for part in ref[2:].split("/") if len(ref) > 1 else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            elif key not in ("enum", "const", "default", "examples"):
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _finite(node: Any, root: dict[str, Any], known: set[str]) -> bool:
    """Whether a finite value may satisfy ``node``, taking the refs in ``known`` as satisfiable.

    Only recursion is judged (other contradictions are the grammar compiler's to find): a ref
    outside ``known`` is taken as unsatisfiable until the fixpoint in ``_check_finite`` says otherwise.
    """
    if node is False:
        return False
    if not isinstance(node, dict):
        return True
    ref = node.get("$ref")
    if isinstance(ref, str) and _resolve(root, ref) is not None and ref not in known:
        return False
    if not all(_finite(s, root, known) for s in node.get("allOf", [])):
        return False
    for key in ("anyOf", "oneOf"):
        if (
            isinstance(node.get(key), list)
            and node[key]
            and not any(_finite(s, root, known) for s in node[key])
        ):
            return False
    if "enum" in node or "const" in node:
        return True
    kinds = node.get("type")
    types = {kinds} if isinstance(kinds, str) else set(kinds) if isinstance(kinds, list) else set(_TYPES)
    if types - {"object", "array"}:
        return True
    if "object" in types:
        props = node.get("properties", {})
        extra = node.get("additionalProperties", True)
        if all(_finite(props.get(p, extra), root, known) for p in node.get("required", [])):
            return True
    if "array" in types:
        least = node.get("minItems", 0)
        prefix = node.get("prefixItems", [])
        firsts = prefix[:least] if isinstance(least, int) else prefix
        rest = least > len(prefix) if isinstance(least, int) else False
        if all(_finite(s, root, known) for s in firsts) and (
            not rest or _finite(node.get("items", True), root, known)
        ):
            return True
    return False


def _check_finite(schema: dict[str, Any], where: str) -> None:
    refs = sorted({r for r in _refs(schema) if _resolve(schema, r) is not None})
    known: set[str] = set()
    while True:  # least fixpoint: a ref is satisfiable once its target is, given the refs known so far
        grown = {r for r in refs if r not in known and _finite(_resolve(schema, r), schema, known)}
        if not grown:
            break
        known |= grown
    if _finite(schema, schema, known):
        return
    loops = [r for r in refs if r not in known]
    raise InvalidRequest(
        f"The schema in '{where}' has no valid value: a required property refers back to its own "
        f"definition ({', '.join(loops[:3]) or '$ref'}), so every value would be infinitely deep. "
        "Make the recursive property optional (or allow null).",
        param=where,
    )


# --- the check after generation -----------------------------------------------------------------


def violations(prepared: Prepared, value: Any, *, limit: int = 3) -> list[str]:
    """Where ``value`` breaks the schema, as ``keyword at /path`` (never the value itself)."""
    try:
        errors = list(_validator(prepared.original)(prepared.original).iter_errors(value))
    except (
        jsonschema.exceptions.JsonSchemaException,
        RecursionError,
        ValueError,
    ) as exc:  # a ref it cannot follow
        log.debug("schema check skipped: %s", brief(str(exc)))
        return []
    return [f"{e.validator} at /{'/'.join(str(p) for p in e.absolute_path)}" for e in errors[:limit]]


@dataclass(slots=True)
class AnswerCheck:
    """Validates a finished answer against the non-strict schemas whose keywords the grammar skipped."""

    request_id: str
    answer: tuple[str, Prepared] | None = None  # where, schema of a JSON response_format
    tools: dict[str, tuple[str, Prepared]] = field(default_factory=dict)  # name -> (where, schema)
    text: list[str] = field(default_factory=list)
    calls: dict[int, list[str]] = field(default_factory=dict)  # index -> [name, arguments...]

    def __bool__(self) -> bool:
        return self.answer is not None or bool(self.tools)

    def observe(self, chunk: Chunk) -> None:
        """One chunk of the answer on its way out (after the tool-call parsers); checks at the end."""
        if self.answer is not None and chunk.text:
            self.text.append(chunk.text)
        for call in chunk.tool_calls:
            if call.id:  # a fragment with an id opens the call
                self.calls[call.index] = [call.name]
            self.calls.setdefault(call.index, [call.name]).append(call.arguments)
        if chunk.finish_reason is not None:
            self.finish()

    def finish(self) -> list[str]:
        """The violations found, each logged once as a warning (keyword and path, no content)."""
        found: list[str] = []
        if self.answer is not None and self.text and not self.calls:
            found += self._check(*self.answer, "".join(self.text))
        for name, *parts in self.calls.values():
            if name in self.tools:
                found += self._check(*self.tools[name], "".join(parts))
        return found

    def _check(self, where: str, prepared: Prepared, text: str) -> list[str]:
        try:
            value = json.loads(text)
        except ValueError:
            return []  # cut by max_tokens or a stop string: finish_reason already says so
        found = violations(prepared, value)
        if found:
            log.warning(
                "schema_violation request=%s where=%s unenforced=%s: %s",
                self.request_id,
                where,
                ",".join(prepared.unenforced[:5]),
                "; ".join(found),
            )
        return found
