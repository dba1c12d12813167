"""Responses API translation and event sequence, validated against OpenAI's published schemas."""

from __future__ import annotations

import json

import pytest

from lumbung.errors import InvalidRequest, Overloaded
from lumbung.surfaces import openai_responses as orr
from lumbung.surfaces.openai_responses_stream import ResponseEventWriter
from lumbung.types import Chunk, Completion, Message, ToolCall, Usage
from tests.support.spec import validate


def _call(**body: object) -> orr.ResponsesCall:
    body.setdefault("model", "m")
    body.setdefault("input", "hi")
    return orr.parse_create(json.dumps(body).encode())


def test_items_become_core_messages_in_turns() -> None:
    call = _call(
        instructions="Be brief.",
        input=[
            {"role": "developer", "content": "Rules."},
            {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "31C"},
            {"type": "function_call_output", "call_id": "c2", "output": "30C"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hot."}]},
        ],
    )
    chat = call.with_history([Message(role="user", content="earlier")])
    assert [(m.role, m.content) for m in chat.messages] == [
        ("system", "Be brief."),
        ("user", "earlier"),
        ("system", "Rules."),
        ("user", "Weather?"),
        ("assistant", None),
        ("tool", "31C"),
        ("tool", "30C"),
        ("assistant", "Hot."),
    ]
    assert [c.id for c in chat.messages[4].tool_calls] == ["c1", "c2"]
    assert call.input_items[0]["id"].startswith("msg_")


def test_sampling_format_and_tool_choice() -> None:
    call = _call(
        temperature=0.2,
        top_p=0.5,
        max_output_tokens=30,
        tool_choice={"type": "function", "name": "f"},
        tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        text={"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": True}},
    )
    s = call.request.sampling
    assert (s.temperature, s.top_p, s.max_tokens) == (0.2, 0.5, 30)
    assert call.request.tool_choice == {"type": "function", "name": "f"}
    assert call.request.response_format.type == "json_schema" and call.request.response_format.strict
    assert call.store and not call.stream


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [{"type": "file_search"}]}, "tools[0].type"),
        ({"background": True}, "background"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"input": None}, "input"),
        ({"reasoning": {"effort": "high"}}, "reasoning"),
        ({"temperature": 3}, "temperature"),
    ],
)
def test_refusals_name_the_parameter(body: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        _call(**body)
    assert err.value.param == param


def test_body_validates_and_carries_function_calls() -> None:
    call = _call()
    done = Completion("", "tool_calls", Usage(5, 3), tool_calls=[ToolCall("call_1", "f", '{"a":1}')])
    body = orr.response_body(
        call, "m", status="completed", output=orr.output_items(done, False), usage=done.usage
    )
    validate(body, "Response")
    assert [i["type"] for i in body["output"]] == ["function_call"]
    assert body["output"][0]["call_id"] == "call_1"


def _run(writer: ResponseEventWriter, chunks: list[Chunk]) -> list[tuple[str, dict[str, object]]]:
    events = writer.start()
    for chunk in chunks:
        events += writer.events(chunk)
    for _, body in events:
        validate(body, "ResponseStreamEvent")
    assert [b["sequence_number"] for _, b in events] == list(range(len(events)))
    return events


def test_stream_ends_with_completed_when_the_model_stops() -> None:
    writer = ResponseEventWriter(_call(), "m")
    events = _run(writer, [Chunk(text="a"), Chunk(text="b"), Chunk(finish_reason="stop", usage=Usage(3, 2))])
    kinds = [k for k, _ in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1][1]["response"]
    assert final["status"] == "completed" and final["output"][0]["content"][0]["text"] == "ab"  # type: ignore[index]
    assert writer.final_body()["output"] == final["output"]  # type: ignore[index]


def test_stream_of_tool_calls_and_reasoning() -> None:
    writer = ResponseEventWriter(_call(), "m")
    events = _run(
        writer,
        [
            Chunk(reasoning="think"),
            Chunk(tool_calls=[ToolCall("c1", "f", '{"x":1}')]),
            Chunk(finish_reason="tool_calls", usage=Usage(3, 2)),
        ],
    )
    kinds = [k for k, _ in events]
    assert "response.reasoning_text.delta" in kinds and "response.function_call_arguments.delta" in kinds
    final = events[-1][1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "function_call"]  # type: ignore[index]


def test_failure_mid_stream_ends_with_response_failed() -> None:
    writer = ResponseEventWriter(_call(), "m")
    events = _run(writer, [Chunk(text="a")])
    events += writer.failed(Overloaded("busy"))
    for _, body in events[-2:]:
        validate(body, "ResponseStreamEvent")
    assert [k for k, _ in events[-2:]] == ["error", "response.failed"]
    assert events[-1][1]["response"]["error"]["code"] == "server_error"  # type: ignore[index]


def test_streamed_call_fragments_fill_one_function_call_item() -> None:
    writer = ResponseEventWriter(_call(), "m")
    events = _run(
        writer,
        [
            Chunk(tool_calls=[ToolCall("c1", "f", "")]),
            Chunk(tool_calls=[ToolCall("", "", '{"a"')]),
            Chunk(tool_calls=[ToolCall("", "", ":2}")]),
            Chunk(finish_reason="tool_calls", usage=Usage(3, 2)),
        ],
    )
    final = events[-1][1]["response"]
    assert [(i["call_id"], i["arguments"]) for i in final["output"]] == [("c1", '{"a":2}')]  # type: ignore[index]
