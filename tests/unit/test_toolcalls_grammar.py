# ruff: noqa: RUF001  (DeepSeek's markers use fullwidth bars on purpose)
"""Forced-call grammars (llguidance, the embedded model's real vocabulary) agree with the parsers.

For every family: the grammar accepts the family's call syntax with schema-valid arguments, the
parser reads that same text back as the calls, and the grammar rejects a wrong name or a schema
violation. Schema keywords that cannot be enforced are refused with the keyword named.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

import llama_cpp
import llguidance
import numpy as np
import pytest

from lumbung import toolcalls
from lumbung.engines.llamacpp.grammar import (
    GrammarCompiler,
    MaskSampler,
    Trigger,
    json_schema_grammar,
    lark_json,
    request_grammar,
)
from lumbung.engines.llamacpp.model import LlamaModel
from lumbung.errors import InvalidRequest, UnsupportedParameter
from lumbung.store.embedded import GEMMA, embedded_model_path
from lumbung.toolcalls.base import lark_string as LIT
from lumbung.types import ChatRequest, Message, ResponseFormat, Tool
from tests.support.conformance import SAMPLES, TOOLS, parsed_calls

ARGS = '{"city":"Jakarta","days":3}'
# One forced call of get_weather, exactly as each family's grammar writes it.
FORCED = {
    "hermes": f'<tool_call>\n{{"name": "get_weather", "arguments": {ARGS}}}\n</tool_call>',
    "gemma": f'```tool_call\n{{"name": "get_weather", "arguments": {ARGS}}}\n```',
    "llama3": f'{{"name": "get_weather", "parameters": {ARGS}}}',
    "mistral": f'[TOOL_CALLS][{{"name": "get_weather", "arguments": {ARGS}}}]',
    "deepseek": "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
    f"{ARGS}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
    "qwen3_coder": "<tool_call>\n<function=get_weather>\n<parameter=city>\nJakarta\n</parameter>\n"
    "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>",
    **{
        f: SAMPLES[f]["forced"]
        for f in (
            "harmony",
            "gemma4",
            "glm",
            "kimi_k2",
            "deepseek_v3_2",
            "deepseek_v4",
            "minimax_m2",
            "seed_oss",
            "tool_calls_json",
            "command_r",
            "kimi_k3",
            "nemotron",
            "gigachat",
            "apertus",
            "firefunction",
            "command_r_plus",
            "hy3",
            "solar_open",
            "lfm",
            "gigachat3",
            "minimax_m3",
            "functionary_v3_1",
            "atem",
            "functionary_v3_2",
            "minicpm",
        )
    },
}
RAW_TEXT_VALUES = {
    "qwen3_coder",
    "glm",
    "deepseek_v3_2",
    "kimi_k3",
    "deepseek_v4",
    "minimax_m2",
    "seed_oss",
    "hy3",
    "minimax_m3",
    "atem",
    "minicpm",
}  # a quote is valid there


@pytest.fixture(scope="module")
def vocab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaModel]:
    model = LlamaModel(embedded_model_path(tmp_path_factory.mktemp("home"), GEMMA), vocab_only=True)
    yield model
    model.close()


@pytest.fixture(scope="module")
def compiler(vocab: LlamaModel) -> GrammarCompiler:
    return GrammarCompiler(vocab, [106])


def accepts(compiler: GrammarCompiler, grammar: str, text: str) -> bool:
    matcher = compiler.matcher(grammar, "test")
    # Byte-exact tokens (Gemma's own tokenizer would turn DeepSeek's "▁" into a space).
    tokens = compiler.tokenizer.greedy_tokenize(text)
    return matcher.consume_tokens(tokens) and matcher.is_accepting()


def test_every_family_has_a_forced_example() -> None:
    assert sorted(FORCED) == sorted(toolcalls.FORMATS)


@pytest.mark.parametrize("family", sorted(FORCED))
def test_forced_grammar_accepts_a_valid_call_and_the_parser_reads_it(
    family: str, compiler: GrammarCompiler
) -> None:
    fmt = toolcalls.get(family)
    grammar = llguidance.LLMatcher.grammar_from_lark(
        fmt.grammar(TOOLS, max_calls=2, lit=LIT, json_rule=lark_json)
    )
    text = FORCED[family]
    assert accepts(compiler, grammar, text)
    assert parsed_calls(fmt, text) == [("get_weather", {"city": "Jakarta", "days": 3})]


@pytest.mark.parametrize("family", sorted(FORCED))
def test_forced_grammar_rejects_unknown_names_and_invalid_arguments(
    family: str, compiler: GrammarCompiler
) -> None:
    fmt = toolcalls.get(family)
    grammar = llguidance.LLMatcher.grammar_from_lark(
        fmt.grammar(TOOLS, max_calls=1, lit=LIT, json_rule=lark_json)
    )
    text = FORCED[family]
    assert not accepts(compiler, grammar, text.replace("get_weather", "get_wether"))
    assert not accepts(compiler, grammar, text.replace("3", "0"))  # minimum: 1
    if family not in RAW_TEXT_VALUES:
        assert not accepts(compiler, grammar, text.replace("Jakarta", 'Jakarta"'))


def test_parallel_calls_are_capped_at_one_per_tool(compiler: GrammarCompiler) -> None:
    fmt = toolcalls.get("gemma")
    one = FORCED["gemma"]
    grammar = llguidance.LLMatcher.grammar_from_lark(
        fmt.grammar(TOOLS, max_calls=2, lit=LIT, json_rule=lark_json)
    )
    assert accepts(compiler, grammar, one + "\n" + one)
    assert not accepts(compiler, grammar, one + "\n" + one + "\n" + one)


def test_special_tokens_become_token_references(compiler: GrammarCompiler) -> None:
    assert compiler.literal("<end_of_turn>") == "<[106]>"
    assert compiler.literal("<tool_call>") == '"<tool_call>"'  # not one token in Gemma's vocabulary


def request(**kwargs: object) -> ChatRequest:
    return ChatRequest(model="m", messages=[Message("user", "hi")], **kwargs)  # type: ignore[arg-type]


def test_json_schema_response_format_is_enforced(compiler: GrammarCompiler) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    planned = request_grammar(
        request(response_format=ResponseFormat("json_schema", schema)), toolcalls.get("gemma"), LIT
    )
    assert planned is not None and planned.trigger is None
    grammar, where = planned.grammar, planned.where
    assert where == "response_format"
    assert accepts(compiler, grammar, '{"n":12}')
    assert not accepts(compiler, grammar, '{"n":"12"}')
    assert not accepts(compiler, grammar, '{"n":1,"m":2}')


def test_json_object_accepts_objects_only(compiler: GrammarCompiler) -> None:
    planned = request_grammar(
        request(response_format=ResponseFormat("json_object")), toolcalls.get("gemma"), LIT
    )
    assert planned is not None
    assert accepts(compiler, planned.grammar, '{"a":[1,2,{"b":null}]}')
    assert not accepts(compiler, planned.grammar, "[1]")


def test_auto_tools_with_json_format_allow_either(compiler: GrammarCompiler) -> None:
    req = request(response_format=ResponseFormat("json_object"), tools=TOOLS, tool_choice="auto")
    planned = request_grammar(req, toolcalls.get("gemma"), LIT)
    assert planned is not None
    assert accepts(compiler, planned.grammar, '{"a":1}')
    assert accepts(compiler, planned.grammar, FORCED["gemma"])


def test_free_text_is_not_constrained_and_auto_tools_wait_for_a_call() -> None:
    assert request_grammar(request(), toolcalls.get("gemma"), LIT) is None
    plan = request_grammar(request(tools=TOOLS), toolcalls.get("gemma"), LIT)
    assert plan is not None and plan.trigger == "```tool_call\n" and plan.where == "tools"
    assert (
        request_grammar(request(tools=TOOLS), toolcalls.get("llama3"), LIT) is None
    )  # no marker to wait for


def _apply(sampler: MaskSampler, n_vocab: int) -> np.ndarray:
    """Run the sampler's apply over a uniform candidate array, as llama_sampler_sample would; the
    tokens still possible afterwards (the sampler may drop candidates or set them to -inf)."""
    data = (llama_cpp.llama_token_data * n_vocab)()
    view = np.ctypeslib.as_array(data)
    view["id"] = np.arange(n_vocab)
    arr = llama_cpp.llama_token_data_array(data=data, size=n_vocab, selected=-1, sorted=False)
    sampler._on_apply(None, ctypes.pointer(arr))
    kept = view[: arr.size]
    allowed = np.zeros(n_vocab, dtype=bool)
    allowed[kept["id"][np.isfinite(kept["logit"])]] = True
    return allowed


def test_auto_tools_constrain_a_call_only_once_it_opens(compiler: GrammarCompiler) -> None:
    model = compiler.model
    plan = request_grammar(request(tools=TOOLS), toolcalls.get("gemma"), LIT)
    assert plan is not None and plan.trigger
    trigger = Trigger(
        plan.trigger,
        lambda t: model.piece(t).decode("utf-8", "replace"),
        lambda text: model.tokenize(text, add_special=False, parse_special=True),
    )
    sampler = compiler.sampler(compiler.matcher(plan.grammar, plan.where), trigger)
    quote = model.tokenize('"', add_special=False)[0]
    word = model.tokenize("hello", add_special=False)[0]
    for token in model.tokenize("Sure, I will check.\n", add_special=False):
        assert _apply(sampler, model.n_vocab).all()  # free text: nothing masked
        sampler._on_accept(None, token)
    assert not sampler.active
    for token in model.tokenize("```tool_call\n{", add_special=False):
        sampler._on_accept(None, token)
    assert sampler.active and not sampler.failed
    allowed = _apply(sampler, model.n_vocab)
    assert allowed[quote] and not allowed[word]  # '{"name": ...' is the only way on
    assert bytes(sampler.matcher.compute_ff_bytes()).startswith(b'"name": "get_')
    for token in model.tokenize('"name": "get_weather", "arguments": {"city":"Ja', add_special=False):
        sampler._on_accept(None, token)
    allowed = _apply(sampler, model.n_vocab)  # inside a string: almost anything, but no raw newline
    newline = model.tokenize("\n", add_special=False)[0]
    assert allowed[word] and allowed[quote] and not allowed[newline] and allowed.sum() > model.n_vocab // 2


def test_named_tool_choice_must_name_a_tool() -> None:
    with pytest.raises(InvalidRequest) as err:
        request_grammar(
            request(tools=TOOLS, tool_choice={"type": "function", "name": "nope"}),
            toolcalls.get("gemma"),
            LIT,
        )
    assert err.value.param == "tool_choice"


@pytest.mark.parametrize(
    ("schema", "keyword"),
    [({"not": {"type": "string"}}, "not"), ({"type": "object", "if": {"required": ["a"]}, "then": {}}, "if")],
)
def test_unenforceable_keywords_are_refused_by_name_when_strict(
    schema: dict[str, object], keyword: str
) -> None:
    with pytest.raises(UnsupportedParameter) as err:
        json_schema_grammar(schema, "response_format.json_schema.schema")
    assert keyword in err.value.message and err.value.param == "response_format.json_schema.schema"
    with pytest.raises(UnsupportedParameter) as err:
        request_grammar(
            request(tools=[Tool("f", None, schema, strict=True)], tool_choice="required"),
            toolcalls.get("gemma"),
            LIT,
        )
    assert err.value.param == "tools[0].function.parameters"


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "not": {"required": ["a"]}},
        {
            "type": "object",
            "properties": {"tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}},
        },
        {
            "type": "object",
            "propertyNames": {"pattern": "^[a-z]+$"},
            "additionalProperties": {"type": "number"},
        },
    ],
)
def test_unenforceable_keywords_of_a_non_strict_schema_are_checked_after_generation(
    schema: dict[str, object],
) -> None:
    plan = request_grammar(
        request(tools=[Tool("f", None, schema)], tool_choice="required"), toolcalls.get("gemma"), LIT
    )
    assert plan is not None and plan.check is not None and "f" in plan.check.tools
    form = ResponseFormat(type="json_schema", schema=schema)
    plan = request_grammar(request(response_format=form), toolcalls.get("gemma"), LIT)
    assert plan is not None and plan.check is not None and plan.check.answer is not None


def test_qwen3_coder_refuses_string_constraints_it_cannot_write_when_strict() -> None:
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^a+$"}}}
    with pytest.raises(UnsupportedParameter, match="pattern"):
        toolcalls.get("qwen3_coder").grammar(
            [Tool("f", None, schema, strict=True)], max_calls=1, lit=LIT, json_rule=lark_json
        )
    assert "<function=f>" in toolcalls.get("qwen3_coder").grammar(
        [Tool("f", None, schema)], max_calls=1, lit=LIT, json_rule=lark_json
    )


def test_a_token_the_grammar_rejects_leaves_only_the_end_tokens(compiler: GrammarCompiler) -> None:
    model = compiler.model
    plan = request_grammar(
        request(response_format=ResponseFormat("json_object")), toolcalls.get("gemma"), LIT
    )
    assert plan is not None
    sampler = compiler.sampler(compiler.matcher(plan.grammar, plan.where))
    sampler._on_accept(None, model.tokenize("hello", add_special=False)[0])  # not JSON: rejected
    assert sampler.failed
    allowed = _apply(sampler, model.n_vocab)
    assert sorted(np.flatnonzero(allowed)) == sorted(compiler.end_tokens)


def test_grammar_text_is_tokenized_byte_for_byte(compiler: GrammarCompiler) -> None:
    """Gemma's tokenizer turns "▁" into a space; the grammar's view must keep the byte."""
    tokenizer = compiler.tokenizer
    for text in ("tool▁calls", "<｜tool▁sep｜>", "plain words"):
        assert tokenizer.decode_bytes(tokenizer.tokenize_str(text)) == text.encode()
