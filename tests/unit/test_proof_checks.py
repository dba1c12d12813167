"""The replay's checks as pure functions: JSON and schema validity, tool calls, text scores."""

from __future__ import annotations

from typing import Any

import pytest

from lumbung.errors import ReplayError
from lumbung.proof import checks, thresholds
from lumbung.proof.answer import Answer, Call, StreamAssembler
from lumbung.proof.compare import compare
from lumbung.proof.report import metric_names
from tests.support.recorded_traffic import PERSON_SCHEMA, WEATHER_TOOL

TOOLS: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER_TOOL]}
SCHEMA: dict[str, Any] = {
    "messages": [{"role": "user", "content": "hi"}],
    "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON_SCHEMA}},
}


def call(args: str, name: str = "get_weather") -> Answer:
    return Answer(calls=[Call(name, args)], finish_reason="tool_calls")


def test_tool_calls_equal_after_normalising_key_order_numbers_and_whitespace() -> None:
    base = call('{"city": "Paris", "unit": "celsius", "days": 2}')
    cand = call('{ "days":2.0,\n "unit":"celsius", "city":"  Paris " }')
    assert checks.tool_match(base, cand) is True
    assert checks.tool_validity(TOOLS, base, cand) is True


def test_a_wrong_argument_is_no_match_and_one_outside_the_schema_is_invalid() -> None:
    base = call('{"city": "Paris", "unit": "celsius"}')
    assert checks.tool_match(base, call('{"city": "Lyon", "unit": "celsius"}')) is False
    assert checks.tool_validity(TOOLS, base, call('{"city": "Lyon", "unit": "celsius"}')) is True
    assert checks.tool_validity(TOOLS, base, call('{"city": "Paris", "unit": "kelvin"}')) is False
    assert checks.tool_validity(TOOLS, base, call('{"city": "Paris"')) is False  # not JSON
    assert checks.tool_validity(TOOLS, base, call("{}", name="get_time")) is False  # no such tool
    assert checks.tool_validity(TOOLS, base, Answer(text="It is sunny")) is False  # no call made


def test_parallel_calls_match_in_any_order() -> None:
    a, b = (
        Call("get_weather", '{"city": "A", "unit": "celsius"}'),
        Call("get_weather", '{"city": "B", "unit": "celsius"}'),
    )
    assert checks.tool_match(Answer(calls=[a, b]), Answer(calls=[b, a])) is True
    assert checks.tool_match(Answer(calls=[a, b]), Answer(calls=[a, a])) is False


def test_json_and_schema_validity() -> None:
    assert checks.json_checks(SCHEMA, Answer(text='{"name": "Ada", "age": 36}')) == (True, True)
    assert checks.json_checks(SCHEMA, Answer(text='{"name": "Ada", "age": "36"}')) == (True, False)
    assert checks.json_checks(SCHEMA, Answer(text='{"name": "Ada", "age": ')) == (False, False)
    plain = {"messages": [], "response_format": {"type": "json_object"}}
    assert checks.json_checks(plain, Answer(text="[1, 2]")) == (True, None)
    assert checks.json_checks({"messages": []}, Answer(text="no json")) == (None, None)


def test_rouge_l() -> None:
    assert checks.rouge_l("the cat sat on the mat", "the cat sat on the mat") == 1.0
    assert checks.rouge_l("the cat sat on the mat", "a dog ran") == 0.0
    assert 0.5 < checks.rouge_l("the cat sat on the mat", "the cat was on the mat") < 1.0


def test_refusals_and_empty_answers_are_counted() -> None:
    request: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
    base = Answer(text="Hello!", finish_reason="stop")
    refused = compare("1", "g", request, base, Answer(text="I'm sorry, I can't help with that."), 0.2)
    assert refused.candidate_refused and refused.checks.no_refusal is False
    empty = compare("2", "g", request, base, Answer(text="  ", finish_reason="stop"), None)
    assert empty.checks.non_empty is False and empty.checks.exact_match is False
    failed = compare("3", "g", SCHEMA, base, Answer(error="HTTP 500: boom"), None)
    assert failed.checks.answered is False and failed.checks.schema_validity is False


def test_a_stream_is_reassembled_with_tool_call_fragments() -> None:
    s = StreamAssembler()
    assert not s.feed({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    assert s.feed(
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "c", "function": {"name": "get_weather", "arguments": '{"ci'}}
                        ]
                    },
                }
            ]
        }
    )
    s.feed(
        {
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "X"}'}}]}}
            ]
        }
    )
    s.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    s.feed({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}})
    answer = s.answer(10.0, 5.0)
    assert answer.calls == [Call("get_weather", '{"city": "X"}')]
    assert (answer.finish_reason, answer.prompt_tokens, answer.completion_tokens) == ("tool_calls", 3, 4)


def test_thresholds_parse_and_judge() -> None:
    known = metric_names()
    parsed = thresholds.parse(
        {
            "tool_call_validity": ">= 0.98",
            "schema_validity": "= 1.0",
            "median_similarity": 0.85,
            "errors": "<1",
        },
        known,
    )
    verdicts = thresholds.judge(
        parsed, {"tool_call_validity": 0.99, "schema_validity": 0.5, "median_similarity": None, "errors": 0}
    )
    assert [v.passed for v in verdicts] == [True, False, None, True]
    with pytest.raises(ReplayError, match="no metric"):
        thresholds.parse({"tool_call_valid": ">= 1"}, known)
    with pytest.raises(ReplayError, match="no condition"):
        thresholds.parse({"errors": "at most 3"}, known)
    with pytest.raises(ReplayError, match="mapping"):
        thresholds.parse(["errors"], known)
