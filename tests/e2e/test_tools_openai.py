"""Tool calling on the real embedded model through the `openai` SDK.

The base model has no tool training: with ``tool_choice`` required or named, constrained decoding
makes its answer a well-formed call whose arguments validate against the tool's schema. These tests
check that contract and OpenAI's wire shape, never the model's judgement.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from tests.support.server import ServerProcess
from tests.support.spec import validate

ASK = [{"role": "user", "content": "What is the weather in Jakarta in the next two days?"}]
WEATHER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 20},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "days", "unit"],
    "additionalProperties": False,
}
TIME: dict[str, Any] = {
    "type": "object",
    "properties": {"zone": {"type": "string", "enum": ["WIB", "WITA", "WIT"]}},
    "required": ["zone"],
    "additionalProperties": False,
}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Forecast for a city",
            "parameters": WEATHER,
            "strict": True,
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "description": "Time in an Indonesian zone", "parameters": TIME},
    },
]
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}


class Forecast(BaseModel):
    city: str = Field(max_length=20)
    days: int = Field(ge=1, le=7)


def spec_check(done: Any) -> None:
    """Every answer is checked against OpenAI's published schema."""
    validate(done.model_dump(mode="json", exclude_unset=True), "CreateChatCompletionResponse")


@pytest.fixture
def client(server: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="anything", max_retries=0) as c:
        yield c


def test_named_tool_choice_gives_one_valid_call(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gemma3:270m",
        messages=ASK,
        tools=TOOLS,
        max_tokens=80,
        temperature=0,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    body = json.loads(raw.text)
    validate(body, "CreateChatCompletionResponse")
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    jsonschema.validate(json.loads(call["function"]["arguments"]), WEATHER)


def test_required_tool_choice_calls_only_offered_tools_with_valid_arguments(client: openai.OpenAI) -> None:
    for seed in (1, 2, 3):
        done = client.chat.completions.create(
            model="gemma3:270m",
            messages=ASK,
            tools=TOOLS,
            tool_choice="required",
            max_tokens=120,
            temperature=1.0,
            seed=seed,
        )
        spec_check(done)
        choice = done.choices[0]
        assert choice.finish_reason == "tool_calls"
        calls = choice.message.tool_calls or []
        assert 1 <= len(calls) <= len(TOOLS)
        assert len({c.id for c in calls}) == len(calls)
        for call in calls:
            assert call.type == "function"
            jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


def test_parallel_tool_calls_false_gives_exactly_one_call(client: openai.OpenAI) -> None:
    done = client.chat.completions.create(
        model="gemma3:270m",
        messages=ASK,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=80,
        temperature=0,
    )
    spec_check(done)
    assert done.choices[0].finish_reason == "tool_calls"
    assert len(done.choices[0].message.tool_calls or []) == 1


def test_stream_helper_accumulates_the_call_into_the_pydantic_model(client: openai.OpenAI) -> None:
    tool = openai.pydantic_function_tool(Forecast, name="forecast")
    chunks = []
    deltas = []
    with client.chat.completions.stream(
        model="gemma3:270m",
        messages=ASK,
        tools=[tool],
        max_tokens=80,
        temperature=0,
        tool_choice={"type": "function", "function": {"name": "forecast"}},
    ) as stream:
        for event in stream:
            if event.type == "chunk":
                chunks.append(event.chunk)
            elif event.type == "tool_calls.function.arguments.delta":
                deltas.append(event.arguments_delta)
        final = stream.get_final_completion()
    for chunk in chunks:
        validate(chunk.model_dump(exclude_unset=True), "CreateChatCompletionStreamResponse")
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.function.name == "forecast"
    assert isinstance(call.function.parsed_arguments, Forecast)
    assert "".join(deltas) == call.function.arguments


def test_stream_delta_shape_is_openais(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gemma3:270m",
        messages=ASK,
        tools=TOOLS,
        tool_choice="required",
        max_tokens=120,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    for chunk in chunks:
        validate(chunk.model_dump(exclude_unset=True), "CreateChatCompletionStreamResponse")
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas
    calls: dict[int, dict[str, str]] = {}
    for d in deltas:
        if d.index not in calls:  # the first delta of a call names it: id, type and name, once
            assert d.id and d.type == "function" and d.function and d.function.name
            calls[d.index] = {"name": d.function.name, "arguments": d.function.arguments or ""}
        else:  # later deltas carry argument fragments only
            assert d.id is None and d.type is None and d.function and d.function.name is None
            calls[d.index]["arguments"] += d.function.arguments or ""
    assert sorted(calls) == list(range(len(calls)))
    for call in calls.values():
        jsonschema.validate(json.loads(call["arguments"]), SCHEMAS[call["name"]])
    finishing = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishing == ["tool_calls"]
    assert chunks[-1].usage is not None
    whole = client.chat.completions.create(
        model="gemma3:270m", messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=120, temperature=0
    )
    assert [(c.function.name, c.function.arguments) for c in whole.choices[0].message.tool_calls or []] == [
        (c["name"], c["arguments"]) for c in calls.values()
    ]


def test_tool_choice_none_answers_in_text(client: openai.OpenAI) -> None:
    done = client.chat.completions.create(
        model="gemma3:270m", messages=ASK, tools=TOOLS, tool_choice="none", max_tokens=12, temperature=0
    )
    spec_check(done)
    assert done.choices[0].message.tool_calls is None
    assert done.choices[0].finish_reason in ("stop", "length")


def test_conversation_with_tool_results_goes_through_the_template(client: openai.OpenAI) -> None:
    history: list[Any] = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"city": "Jakarta", "days": 2, "unit": "celsius"}',
                    },
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"forecast": ["rain", "sun"]}'},
    ]
    short = client.chat.completions.create(model="gemma3:270m", messages=ASK, tools=TOOLS, max_tokens=1)
    long = client.chat.completions.create(
        model="gemma3:270m", messages=history, tools=TOOLS, max_tokens=8, temperature=0
    )
    spec_check(long)
    assert long.usage and short.usage
    assert (
        long.usage.prompt_tokens > short.usage.prompt_tokens + 20
    )  # the call and the result are in the prompt
    again = client.chat.completions.create(
        model="gemma3:270m",
        messages=history,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        max_tokens=40,
        temperature=0,
    )
    spec_check(again)
    [call] = again.choices[0].message.tool_calls or []
    jsonschema.validate(json.loads(call.function.arguments), TIME)


def test_named_function_that_is_not_offered_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="gemma3:270m",
            messages=ASK,
            tools=TOOLS,
            max_tokens=5,
            tool_choice={"type": "function", "function": {"name": "launch_rocket"}},
        )
    assert isinstance(err.value.body, dict) and err.value.body["param"] == "tool_choice"


def test_unenforceable_tool_schema_is_refused_by_name_when_strict(client: openai.OpenAI) -> None:
    bad = {
        "type": "function",
        "function": {
            "name": "f",
            "strict": True,
            "parameters": {"type": "object", "not": {"required": ["a"]}},
        },
    }
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="gemma3:270m", messages=ASK, tools=[bad], tool_choice="required", max_tokens=5
        )
    body = err.value.body
    assert isinstance(body, dict)
    assert body["param"] == "tools[0].function.parameters" and "not" in body["message"]


DEEP_ARGUMENTS = "[" * 1100 + "]" * 1100  # Python's json recurses past its limit on this


def test_deeply_nested_arguments_of_an_earlier_call_are_rendered_not_a_500(client: openai.OpenAI) -> None:
    """The earlier call's arguments reach the template as the client's text (chat and Responses)."""
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": DEEP_ARGUMENTS},
    }
    done = client.chat.completions.create(
        model="gemma3:270m",
        messages=[
            *ASK,
            {"role": "assistant", "content": None, "tool_calls": [call]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": "call_1", "content": "31C"},
        ],
        tools=TOOLS,
        max_tokens=2,
    )
    assert done.choices[0].finish_reason in {"stop", "length", "tool_calls"}
    answer = client.responses.create(
        model="gemma3:270m",
        input=[
            *ASK,  # type: ignore[list-item]
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": DEEP_ARGUMENTS,
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "31C"},
        ],
        tools=[{"type": "function", "name": "get_weather", "parameters": WEATHER}],  # type: ignore[list-item]
        max_output_tokens=2,
    )
    assert answer.status in {"completed", "incomplete"}


# Claude Code's tools and zod's z.record(...) (Vercel AI SDK) carry propertyNames; pydantic's set[str]
# carries uniqueItems. OpenAI accepts them without strict, so lumbung does: enforced where the grammar
# can, checked after generation where it cannot.
NON_STRICT = {
    "type": "object",
    "properties": {
        "env": {
            "type": "object",
            "propertyNames": {"type": "string"},
            "additionalProperties": {"type": "string"},
        },
        "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True, "maxItems": 3},
        "labels": {"type": "object", "propertyNames": {"pattern": "^[a-z]+$"}, "maxProperties": 2},
    },
    "required": ["env", "tags"],
}


def test_a_non_strict_tool_schema_with_unenforceable_keywords_is_called(client: openai.OpenAI) -> None:
    tool = {"type": "function", "function": {"name": "run", "parameters": NON_STRICT}}
    answer = client.chat.completions.create(
        model="gemma3:270m", messages=ASK, tools=[tool], tool_choice="required", max_tokens=60
    )
    choice = answer.choices[0]
    assert choice.message.tool_calls, choice
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "run"
    if choice.finish_reason == "tool_calls":
        args = json.loads(call.function.arguments)
        assert isinstance(args["env"], dict) and isinstance(args["tags"], list)


def test_a_required_recursive_schema_is_a_400_not_a_500(client: openai.OpenAI) -> None:
    loop = {
        "$ref": "#/$defs/node",
        "$defs": {
            "node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}, "required": ["next"]}
        },
    }
    tool = {"type": "function", "function": {"name": "walk", "parameters": loop}}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="gemma3:270m", messages=ASK, tools=[tool], tool_choice="required", max_tokens=5
        )
    body = err.value.body
    assert isinstance(body, dict) and body["param"] == "tools[0].function.parameters"
    assert "#/$defs/node" in body["message"]


def test_a_forced_call_cut_by_max_tokens_is_never_text(client: openai.OpenAI) -> None:
    """However few tokens max_tokens leaves, a forced call never comes out as the family's raw
    syntax in the text: a named call cut before its name was whole is that call, incomplete."""
    for limit in range(1, 7):
        done = client.chat.completions.create(
            model="gemma3:270m",
            messages=ASK,
            tools=TOOLS,
            max_tokens=limit,
            temperature=0,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
        choice = done.choices[0]
        assert choice.finish_reason == "length", (limit, choice)
        assert not choice.message.content, (limit, choice.message.content)
        calls = choice.message.tool_calls or []
        assert [c.function.name for c in calls] == ["get_weather"], (limit, calls)  # type: ignore[union-attr]
        pieces = []
        with client.chat.completions.create(
            model="gemma3:270m",
            messages=ASK,
            tools=TOOLS,
            max_tokens=limit,
            temperature=0,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            stream=True,
        ) as stream:
            for chunk in stream:
                if chunk.choices:
                    pieces.append(chunk.choices[0].delta.content or "")
        assert "".join(pieces) == "", (limit, pieces)
