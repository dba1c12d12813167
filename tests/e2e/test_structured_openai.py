"""response_format on the real embedded model, through the `openai` SDK: enforced, or refused.

The model is a small base model: these tests assert structure and protocol (the answer parses and
validates against the schema, a cut answer says "length"), never the quality of what it writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from tests.support.server import ServerProcess
from tests.support.spec import validate

ASK = [{"role": "user", "content": "Describe a farmer from Java as JSON."}]


class Farmer(BaseModel):
    name: str = Field(max_length=16)
    age: int = Field(ge=18, le=90)
    crops: list[str] = Field(max_length=3)
    owns_rice_barn: bool


@pytest.fixture
def client(server: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="anything", max_retries=0) as c:
        yield c


def test_parse_with_a_pydantic_model_returns_a_validated_instance(client: openai.OpenAI) -> None:
    done = client.chat.completions.parse(
        model="gemma3:270m", messages=ASK, response_format=Farmer, max_tokens=200, temperature=0
    )
    choice = done.choices[0]
    assert choice.finish_reason == "stop"
    assert isinstance(choice.message.parsed, Farmer)
    assert choice.message.parsed == Farmer.model_validate_json(choice.message.content or "")
    assert choice.message.tool_calls is None


def test_json_schema_answer_validates_and_matches_the_openai_schema(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "enum": ["Jakarta", "Bandung", "Medan"]},
            "rain": {"type": "boolean"},
        },
        "required": ["city", "rain"],
        "additionalProperties": False,
    }
    raw = client.chat.completions.with_raw_response.create(
        model="gemma3:270m",
        messages=[{"role": "user", "content": "Which city is rainy today?"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "weather", "schema": schema, "strict": True},
        },
        max_tokens=60,
        seed=7,
    )
    body = json.loads(raw.text)
    validate(body, "CreateChatCompletionResponse")
    assert body["choices"][0]["finish_reason"] == "stop"
    jsonschema.validate(json.loads(body["choices"][0]["message"]["content"]), schema)


def test_json_object_answer_is_one_json_object(client: openai.OpenAI) -> None:
    for seed in (1, 2):
        done = client.chat.completions.create(
            model="gemma3:270m",
            messages=[{"role": "user", "content": "Reply with an empty JSON object."}],
            response_format={"type": "json_object"},
            max_tokens=100,
            temperature=0.7,
            seed=seed,
        )
        text = done.choices[0].message.content or ""
        if done.choices[0].finish_reason == "stop":
            assert isinstance(json.loads(text), dict)
        else:  # a long answer was cut: still the start of one object, never anything else
            assert done.choices[0].finish_reason == "length" and text.startswith("{")


def test_stream_cut_inside_json_ends_with_length(client: openai.OpenAI) -> None:
    args = {
        "model": "gemma3:270m",
        "messages": ASK,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "farmer", "schema": Farmer.model_json_schema()},
        },
        "max_tokens": 6,
        "temperature": 0,
    }
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **args))
    for chunk in chunks:
        validate(chunk.model_dump(exclude_unset=True), "CreateChatCompletionStreamResponse")
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finishing] == ["length"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("{") and chunks[-1].usage and chunks[-1].usage.completion_tokens == 6
    whole = client.chat.completions.create(**args)
    assert whole.choices[0].message.content == text and whole.choices[0].finish_reason == "length"
    with pytest.raises(ValueError):
        json.loads(text)


@pytest.mark.parametrize(
    ("schema", "keyword"),
    [
        ({"type": "object", "not": {"required": ["a"]}}, "not"),
        ({"type": "object", "properties": {"a": {"if": {"type": "string"}, "then": {"minLength": 2}}}}, "if"),
    ],
)
def test_unenforceable_schema_keyword_is_refused_by_name_when_strict(
    client: openai.OpenAI, schema: dict[str, object], keyword: str
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="gemma3:270m",
            messages=ASK,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": schema, "strict": True},
            },
            max_tokens=5,
        )
    body = err.value.body
    assert isinstance(body, dict)
    assert body["param"] == "response_format.json_schema.schema" and body["code"] == "unsupported_parameter"
    assert keyword in body["message"]
    validate({"error": body}, "ErrorResponse")


def test_a_non_strict_schema_is_best_effort_and_the_answer_still_follows_what_can_be_enforced(
    client: openai.OpenAI,
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "crops": {
                "type": "array",
                "items": {"type": "string", "maxLength": 12},
                "uniqueItems": True,
                "maxItems": 3,
            },
            "prices": {
                "type": "object",
                "propertyNames": {"type": "string"},
                "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100000},
                "maxProperties": 2,
            },
        },
        "required": ["crops", "prices"],
        "additionalProperties": False,
    }
    answer = client.chat.completions.create(
        model="gemma3:270m",
        messages=ASK,
        response_format={"type": "json_schema", "json_schema": {"name": "farm", "schema": schema}},
        max_tokens=200,
        temperature=0,
    )
    assert answer.choices[0].finish_reason == "stop", answer.choices[0].message.content
    value = json.loads(answer.choices[0].message.content or "")
    enforced = {**schema, "properties": {**schema["properties"], "crops": {"type": "array", "maxItems": 3}}}
    jsonschema.validate(value, enforced)  # all but uniqueItems, which is checked and flagged in the log


def test_json_schema_without_schema_is_invalid(server: ServerProcess) -> None:
    import httpx

    r = httpx.post(
        server.base_url + "/v1/chat/completions",
        json={"model": "gemma3:270m", "messages": ASK, "response_format": {"type": "json_schema"}},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "response_format.json_schema"
