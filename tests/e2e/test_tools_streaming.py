"""Tool-call arguments stream while the real model writes them, through each SDK's stream helper.

A forced call of a tool with long string arguments must reach the client in several argument
fragments that join into exactly the final arguments (valid JSON that fits the schema), on the
OpenAI chat, Anthropic messages and OpenAI Responses surfaces. A call cut by ``max_tokens`` ends
with the "length" finish reason, never as a complete call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import jsonschema
import openai
import pytest

from tests.support.server import ServerProcess
from tests.support.spec import validate

NOTE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 12, "maxLength": 40},
        "body": {"type": "string", "minLength": 40, "maxLength": 120},
    },
    "required": ["title", "body"],
    "additionalProperties": False,
}
ASK = "Write a note about the rice harvest in Bali."
OPENAI_TOOL: Any = {
    "type": "function",
    "function": {"name": "write_note", "description": "Save a note", "parameters": NOTE},
}
FORCED: Any = {"type": "function", "function": {"name": "write_note"}}


@pytest.fixture
def oai(server: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="anything", max_retries=0) as c:
        yield c


def test_chat_stream_helper_accumulates_many_argument_fragments(oai: openai.OpenAI) -> None:
    ask: Any = [{"role": "user", "content": ASK}]
    chunks, deltas = [], []
    with oai.chat.completions.stream(
        model="gemma3:270m",
        messages=ask,
        tools=[OPENAI_TOOL],
        tool_choice=FORCED,
        max_tokens=160,
        temperature=0,
    ) as stream:
        for event in stream:
            if event.type == "chunk":
                chunks.append(event.chunk)
            elif event.type == "tool_calls.function.arguments.delta":
                deltas.append(event.arguments_delta)
        final = stream.get_final_completion()
    for chunk in chunks:
        validate(chunk.model_dump(exclude_unset=True), "CreateChatCompletionStreamResponse")
    assert final.choices[0].finish_reason == "tool_calls"
    [call] = final.choices[0].message.tool_calls or []
    assert len([d for d in deltas if d]) > 1  # the head carries "", as OpenAI's does
    assert "".join(deltas) == call.function.arguments
    jsonschema.validate(json.loads(call.function.arguments), NOTE)
    whole = oai.chat.completions.create(
        model="gemma3:270m",
        messages=ask,
        tools=[OPENAI_TOOL],
        tool_choice=FORCED,
        max_tokens=160,
        temperature=0,
    )
    [same] = whole.choices[0].message.tool_calls or []
    assert same.function.arguments == call.function.arguments  # streamed or not, the same text


def test_chat_call_cut_by_max_tokens_ends_with_length_not_tool_calls(oai: openai.OpenAI) -> None:
    ask: Any = [{"role": "user", "content": ASK}]
    stream = oai.chat.completions.create(
        model="gemma3:270m",
        messages=ask,
        tools=[OPENAI_TOOL],
        tool_choice=FORCED,
        max_tokens=24,
        temperature=0,
        stream=True,
    )
    chunks = list(stream)
    for chunk in chunks:
        validate(chunk.model_dump(exclude_unset=True), "CreateChatCompletionStreamResponse")
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas and deltas[0].function and deltas[0].function.name == "write_note"
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert arguments.startswith("{")
    with pytest.raises(ValueError):
        json.loads(arguments)  # incomplete, as the finish reason says
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "length"
    ]


def test_anthropic_stream_helper_gets_input_json_in_fragments(server: ServerProcess) -> None:
    tool: Any = {"name": "write_note", "description": "Save a note", "input_schema": NOTE}
    client = anthropic.Anthropic(base_url=server.base_url, api_key="anything", max_retries=0)
    with (
        client,
        client.messages.stream(
            model="gemma3:270m",
            max_tokens=160,
            messages=[{"role": "user", "content": ASK}],
            tools=[tool],
            tool_choice={"type": "tool", "name": "write_note"},
            extra_body={"temperature": 0},
        ) as stream,
    ):
        partials = [e.partial_json for e in stream if e.type == "input_json"]
        final = stream.get_final_message()
    [use] = [b for b in final.content if b.type == "tool_use"]
    assert final.stop_reason == "tool_use"
    assert len(partials) > 1
    assert json.loads("".join(partials)) == use.input
    jsonschema.validate(use.input, NOTE)


def test_responses_stream_helper_gets_argument_deltas(oai: openai.OpenAI) -> None:
    tool: Any = {"type": "function", "name": "write_note", "description": "Save a note", "parameters": NOTE}
    with oai.responses.stream(
        model="gemma3:270m",
        input=ASK,
        tools=[tool],
        tool_choice={"type": "function", "name": "write_note"},
        max_output_tokens=160,
        temperature=0,
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    [done] = [e for e in events if e.type == "response.function_call_arguments.done"]
    [call] = [i for i in final.output if i.type == "function_call"]
    assert len(deltas) > 1
    assert "".join(deltas) == done.arguments == call.arguments
    jsonschema.validate(json.loads(call.arguments), NOTE)


def test_call_cut_by_a_stop_string_is_an_error_never_a_call(oai: openai.OpenAI) -> None:
    """A stop string inside the arguments ends the answer after the call began to stream: the
    call can no longer become text, so the answer is an error, whole or streamed."""
    args: Any = {
        "model": "gemma3:270m",
        "messages": [{"role": "user", "content": ASK}],
        "tools": [OPENAI_TOOL],
        "tool_choice": FORCED,
        "max_tokens": 160,
        "temperature": 0,
        "stop": ['":"'],  # the grammar writes compact JSON: this cuts after the first key
    }
    with pytest.raises(openai.InternalServerError) as whole:
        oai.chat.completions.create(**args)
    assert whole.value.code == "invalid_model_output"
    got = []
    with pytest.raises(openai.APIError) as streamed:
        for chunk in oai.chat.completions.create(stream=True, **args):
            validate(chunk.model_dump(exclude_unset=True), "CreateChatCompletionStreamResponse")
            got.extend(chunk.choices[0].delta.tool_calls or [] if chunk.choices else [])
            assert not (chunk.choices and chunk.choices[0].finish_reason)  # never reported complete
    assert got and got[0].function and got[0].function.name == "write_note"  # it had begun to stream
    assert "malformed" in str(streamed.value)
