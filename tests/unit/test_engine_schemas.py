"""Client schemas before constrained decoding: strict is enforced, non-strict is best effort.

Property: a satisfiable, valid schema without ``strict`` is never refused, whatever keywords it uses
(propertyNames, uniqueItems, patternProperties, contains/minContains, not, if/then, dependentRequired...),
and the grammar built from it (with the embedded model's real vocabulary) accepts a value that satisfies
the schema. Keywords the grammar skips are checked on the finished answer.
"""

from __future__ import annotations

import json
import logging
import string
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lumbung.engines.llamacpp.grammar import GrammarCompiler, MaskSampler, grammar_failure, lark_json
from lumbung.engines.llamacpp.model import LlamaModel
from lumbung.engines.llamacpp.schemas import AnswerCheck, drop_always_true, prepare
from lumbung.errors import ApiError, InvalidRequest, UnsupportedParameter
from lumbung.store.embedded import GEMMA, embedded_model_path
from lumbung.types import Chunk, ToolCall

Pair = tuple[dict[str, Any], Any]  # a schema and a value that satisfies it

NAMES = st.text(string.ascii_lowercase + "_", min_size=1, max_size=8)


@pytest.fixture(scope="module")
def compiler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrammarCompiler]:
    model = LlamaModel(embedded_model_path(tmp_path_factory.mktemp("home"), GEMMA), vocab_only=True)
    yield GrammarCompiler(model, [106])
    model.close()


def accepts(compiler: GrammarCompiler, schema: dict[str, Any], value: Any) -> bool:
    matcher = compiler.matcher(f"start: answer\nanswer: {lark_json(schema)}\n", "test")
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return matcher.consume_tokens(compiler.tokenizer.greedy_tokenize(text)) and matcher.is_accepting()


@st.composite
def leaves(draw: st.DrawFn) -> Pair:
    kind = draw(st.sampled_from(["string", "integer", "boolean", "null", "enum"]))
    if kind == "string":
        text = draw(st.text(string.ascii_letters + " ", max_size=6))
        schema: dict[str, Any] = {"type": "string"}
        if draw(st.booleans()):
            schema["format"] = draw(st.sampled_from(["email", "uri", "date", "x-custom"]))
            text = {"email": "a@b.co", "uri": "https://x.io", "date": "2026-12-04"}.get(
                schema["format"], text
            )
        if draw(st.booleans()):
            schema |= {"minLength": len(text), "maxLength": len(text) + 3}
        return schema, text
    if kind == "integer":
        n = draw(st.integers(-50, 50))
        return {"type": "integer", "minimum": n - 5, "maximum": n + 5, "multipleOf": 1}, n
    if kind == "boolean":
        return {"type": "boolean"}, draw(st.booleans())
    if kind == "null":
        return {"type": "null"}, None
    values = draw(st.lists(st.integers(0, 9) | NAMES, min_size=1, max_size=3, unique=True))
    return {"enum": values}, values[0]


def arrays(child: st.SearchStrategy[Pair]) -> st.SearchStrategy[Pair]:
    @st.composite
    def build(draw: st.DrawFn) -> Pair:
        items, value = draw(child)
        schema: dict[str, Any] = {"type": "array", "items": items}
        keywords = draw(st.sets(st.sampled_from(["uniqueItems", "contains", "bounds", "none"])))
        if "uniqueItems" in keywords:
            schema["uniqueItems"] = True
        if "contains" in keywords:
            schema |= {"contains": items, "minContains": draw(st.sampled_from([0, 1]))}
        if "bounds" in keywords:
            schema |= {"minItems": 1, "maxItems": 3}
        return schema, [value]

    return build()


def objects(child: st.SearchStrategy[Pair]) -> st.SearchStrategy[Pair]:
    @st.composite
    def build(draw: st.DrawFn) -> Pair:
        fields = draw(st.dictionaries(NAMES, child, min_size=1, max_size=3))
        names = sorted(fields)
        value = {k: v for k, (_, v) in fields.items()}
        schema: dict[str, Any] = {"type": "object", "properties": {k: s for k, (s, _) in fields.items()}}
        if draw(st.booleans()):
            schema["required"] = draw(st.lists(st.sampled_from(names), unique=True))
        extra = draw(
            st.sets(
                st.sampled_from(
                    [
                        "propertyNames",
                        "propertyNamesPattern",
                        "closed",
                        "patternProperties",
                        "dependentRequired",
                        "counts",
                        "not",
                        "if",
                    ]
                )
            )
        )
        if "propertyNames" in extra:
            schema["propertyNames"] = {"type": "string"}
        if "propertyNamesPattern" in extra:
            schema["propertyNames"] = {"pattern": "^[a-z_]+$", "maxLength": 8}
        if "closed" in extra:
            schema["additionalProperties"] = False
        if "patternProperties" in extra:
            schema["patternProperties"] = {"^zz_": {"type": "string"}}
        if "dependentRequired" in extra and len(names) > 1:
            schema["dependentRequired"] = {names[0]: [names[1]]}
        if "counts" in extra:
            schema |= {"minProperties": len(names), "maxProperties": len(names)}
        if "not" in extra:
            schema["not"] = {"required": ["absent_key_x"]}
        if "if" in extra:
            schema |= {"if": {"required": [names[0]]}, "then": {"required": [names[0]]}}
        return schema, value

    return build()


def records(child: st.SearchStrategy[Pair]) -> st.SearchStrategy[Pair]:
    """zod's ``z.record(z.string(), X)`` (Vercel AI SDK) and Claude Code's map-typed inputs."""

    @st.composite
    def build(draw: st.DrawFn) -> Pair:
        schema, value = draw(child)
        key = draw(NAMES)
        return {"type": "object", "propertyNames": {"type": "string"}, "additionalProperties": schema}, {
            key: value
        }

    return build()


def unions(child: st.SearchStrategy[Pair]) -> st.SearchStrategy[Pair]:
    return st.tuples(child, child).map(lambda ab: ({"anyOf": [ab[0][0], ab[1][0]]}, ab[0][1]))


PAIRS = st.recursive(
    leaves(), lambda c: st.one_of(arrays(c), objects(c), records(c), unions(c)), max_leaves=6
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(PAIRS)
def test_a_non_strict_schema_is_never_refused_and_its_grammar_accepts_a_valid_value(
    compiler: GrammarCompiler, pair: Pair
) -> None:
    schema, value = pair
    schema = {"type": "object", "properties": {"v": schema}, "required": ["v"]}
    value = {"v": value}
    ready = prepare(schema, strict=False, where="tools[0].function.parameters")
    assert accepts(compiler, ready.schema, value)
    check = AnswerCheck("req-1", tools={"f": ("tools[0].function.parameters", ready)})
    check.observe(Chunk(tool_calls=[ToolCall("call-1", "f", json.dumps(value))], finish_reason="tool_calls"))
    assert check.finish() == []


@settings(max_examples=60, deadline=None)
@given(PAIRS)
def test_a_strict_schema_is_enforced_whole_or_refused_by_keyword(pair: Pair) -> None:
    schema, _ = pair
    try:
        ready = prepare(schema, strict=True, where="response_format.json_schema.schema")
    except UnsupportedParameter as exc:  # a keyword it cannot enforce, or an unknown format
        assert exc.param == "response_format.json_schema.schema"
        assert "Unsupported schema keyword" in exc.message or "Unknown format" in exc.message
    else:
        assert ready.unenforced == []


def test_property_counts_beside_optional_properties_are_keywords_checked_after() -> None:
    """llguidance cannot count properties when some are optional (found by the property test):
    strict names the keyword, non-strict checks it after generation, and a fully required object
    keeps it enforced."""
    props = {"a": {"type": "string"}, "b": {"type": "integer"}}
    for keyword in ("minProperties", "maxProperties"):
        schema = {"type": "object", "properties": props, keyword: 1}
        with pytest.raises(UnsupportedParameter, match=f"Unsupported schema keyword.*{keyword}"):
            prepare(schema, strict=True, where="w")
        assert prepare(schema, strict=False, where="w").unenforced == [keyword]
        required = {**schema, "required": ["a", "b"], keyword: 2}
        assert prepare(required, strict=True, where="w").unenforced == []


def test_property_names_of_type_string_are_satisfied_as_they_are(compiler: GrammarCompiler) -> None:
    record = {
        "type": "object",
        "propertyNames": {"type": "string"},
        "additionalProperties": {"type": "number"},
    }
    ready = prepare(record, strict=True, where="tools[0].function.parameters")  # even strict: always true
    assert ready.unenforced == [] and "propertyNames" not in ready.schema
    assert accepts(compiler, ready.schema, {"a": 1, "b": 2.5})
    assert not accepts(compiler, ready.schema, {"a": "x"})


def test_drop_always_true_leaves_properties_named_like_keywords() -> None:
    schema = {"type": "object", "properties": {"propertyNames": {"type": "string"}, "uniqueItems": {}}}
    assert drop_always_true(schema) == schema


def test_a_required_recursive_ref_is_refused_up_front() -> None:
    loop = {
        "$ref": "#/$defs/node",
        "$defs": {
            "node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}, "required": ["next"]}
        },
    }
    for strict in (True, False):
        with pytest.raises(InvalidRequest) as err:
            prepare(loop, strict=strict, where="response_format.json_schema.schema")
        assert err.value.status == 400 and "#/$defs/node" in err.value.message
        assert err.value.param == "response_format.json_schema.schema"
    optional = json.loads(json.dumps(loop))
    optional["$defs"]["node"]["required"] = []
    assert prepare(optional, strict=True, where="x").unenforced == []
    nullable = json.loads(json.dumps(loop))
    nullable["$defs"]["node"]["properties"]["next"] = {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}
    assert prepare(nullable, strict=True, where="x").unenforced == []


def test_a_schema_with_no_valid_value_is_a_400_naming_where(compiler: GrammarCompiler) -> None:
    with pytest.raises(InvalidRequest) as err:
        prepare({"type": "integer", "minimum": 5, "maximum": 2}, strict=False, where="tools")
    assert err.value.status == 400 and err.value.param == "tools" and "no valid value" in err.value.message
    # Found only once compiled against the vocabulary: still a 400 before anything is generated.
    with pytest.raises(InvalidRequest) as err:
        never = {"type": "string", "pattern": "^a$", "minLength": 3}
        compiler.matcher(f"start: answer\nanswer: {lark_json(never)}\n", "tools")
    assert err.value.status == 400 and err.value.param == "tools" and "no valid value" in err.value.message


def test_an_invalid_schema_is_a_400_in_either_mode() -> None:
    for strict in (True, False):
        with pytest.raises(InvalidRequest, match="Invalid schema for 'x'"):
            prepare({"type": "strange"}, strict=strict, where="x")


def test_a_schema_the_compiler_cannot_read_is_best_effort_when_not_strict() -> None:
    look_around = {"type": "object", "properties": {"s": {"type": "string", "pattern": "(?<=a)b"}}}
    ready = prepare(look_around, strict=False, where="x")
    assert ready.schema == {"type": "object"} and ready.unenforced == ["schema"]
    with pytest.raises(UnsupportedParameter, match="cannot be enforced"):
        prepare(look_around, strict=True, where="x")


def test_a_violation_of_an_unenforced_keyword_is_flagged_without_the_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    schema = {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}}
    ready = prepare(schema, strict=False, where="response_format.json_schema.schema")
    assert ready.unenforced == ["uniqueItems"]
    check = AnswerCheck("req-7", answer=("response_format.json_schema.schema", ready))
    check.observe(Chunk(text='{"tags":["secret",'))
    with caplog.at_level(logging.WARNING):
        check.observe(Chunk(text='"secret"]}', finish_reason="stop"))
    assert check.finish() == ["uniqueItems at /tags"]
    assert "schema_violation request=req-7" in caplog.text and "uniqueItems at /tags" in caplog.text
    assert "secret" not in caplog.text


def test_a_grammar_too_complex_to_follow_ends_with_an_error_naming_no_internal_limit(
    compiler: GrammarCompiler,
) -> None:
    # prepare() refuses this schema; fed straight to the compiler it exhausts the parser at once.
    loop = {
        "$ref": "#/$defs/a",
        "$defs": {"a": {"type": "object", "properties": {"x": {"$ref": "#/$defs/a"}}, "required": ["x"]}},
    }
    grammar = f"start: answer\nanswer: {lark_json(loop)}\n"
    sampler: MaskSampler = compiler.sampler(compiler.matcher(grammar, "response_format"))
    for _ in range(8):  # the first token the grammar allows, each step, as greedy decoding would
        bits = np.unpackbits(np.frombuffer(sampler.matcher.compute_bitmask(), np.uint8), bitorder="little")
        sampler._accept_token(int(np.flatnonzero(bits)[0]))
    assert sampler.failed

    class Plan:
        where = "response_format"

    error: ApiError = grammar_failure(Plan(), sampler)  # type: ignore[arg-type]
    assert error.status == 400 and error.param == "response_format"
    assert "too complex" in error.message
    assert "limit" not in error.message and "50000" not in error.message


def test_compiler_errors_reach_the_client_bounded_and_without_internal_limits() -> None:
    from lumbung.engines.llamacpp.schemas import client_reason

    said = client_reason("parser error: Too many items (limit 50000; ff_tokens); try avoiding short lexemes")
    assert "too complex" in said and "limit" not in said and "50000" not in said
    long = client_reason("Error: bad regex " + "x" * 5000 + "\nsecond line")
    assert len(long) <= 203 and long.endswith("...")
