"""Anthropic Messages <-> core types: pure translation, named after the wire behaviour pinned down."""

from __future__ import annotations

import json

import pytest

from lumbung.errors import ApiError, InvalidRequest, UnsupportedParameter
from lumbung.surfaces import anthropic as ant
from lumbung.types import Chunk, Completion, ToolCall, Usage


def _parse(**body: object) -> tuple[object, ant.MessagesOptions]:
    body.setdefault("model", "m")
    body.setdefault("max_tokens", 100)
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return ant.parse_messages_request(json.dumps(body).encode())


def test_tool_results_become_tool_messages_before_the_user_text() -> None:
    chat, _ = _parse(
        system=[{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
        messages=[
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "calling"},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "42"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "t2",
                        "content": [{"type": "text", "text": "no"}],
                        "is_error": True,
                    },
                    {"type": "text", "text": "and?"},
                ],
            },
        ],
    )
    roles = [(m.role, m.content) for m in chat.messages]  # type: ignore[attr-defined]
    assert roles == [
        ("system", "A\n\nB"),
        ("user", "go"),
        ("assistant", "calling"),
        ("tool", "42"),
        ("tool", "Error: no"),
        ("user", "and?"),
    ]
    assistant = chat.messages[2]  # type: ignore[attr-defined]
    assert assistant.reasoning == "hmm"
    assert assistant.tool_calls == [ToolCall("t1", "f", '{"x": 1}')]
    assert chat.messages[3].tool_call_id == "t1"  # type: ignore[attr-defined]


def test_consecutive_user_turns_are_combined() -> None:
    chat, _ = _parse(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    assert [(m.role, m.content) for m in chat.messages] == [("user", "a\n\nb")]  # type: ignore[attr-defined]


def test_tool_choice_maps_onto_core() -> None:
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    for wire, core in [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "f"}, {"type": "function", "name": "f"}),
    ]:
        chat, _ = _parse(tools=tools, tool_choice=wire)
        assert chat.tool_choice == core  # type: ignore[attr-defined]
    chat, _ = _parse(tools=tools, tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    assert chat.parallel_tool_calls is False  # type: ignore[attr-defined]
    assert chat.tools[0].parameters == {"type": "object"}  # type: ignore[attr-defined]
    with pytest.raises(InvalidRequest, match="no tool named"):
        _parse(tools=tools, tool_choice={"type": "tool", "name": "g"})


def test_sampling_and_metadata() -> None:
    chat, options = _parse(
        temperature=0.5, top_p=0.9, top_k=7, stop_sequences=["END"], metadata={"user_id": "u"}, stream=True
    )
    s = chat.sampling  # type: ignore[attr-defined]
    assert (s.temperature, s.top_p, s.top_k, s.max_tokens, s.stop) == (0.5, 0.9, 7, 100, ["END"])
    assert chat.user == "u" and options.stream and options.stop_sequences == ["END"]  # type: ignore[attr-defined]
    assert chat.id.startswith("msg_")  # type: ignore[attr-defined]


def test_output_config_format_is_a_strict_json_schema() -> None:
    chat, _ = _parse(output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}})
    rf = chat.response_format  # type: ignore[attr-defined]
    assert (rf.type, rf.schema, rf.strict) == ("json_schema", {"type": "object"}, True)


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}, "document"),
        ({"tools": [{"name": "bash", "type": "bash_20250124"}]}, "bash_20250124"),
        ({"tools": [{"name": "f"}]}, "input_schema"),
        ({"thinking": {"type": "enabled", "budget_tokens": 10}}, "budget_tokens"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, "max_tokens"),
        ({"container": "c"}, "container"),
        ({"speed": "fast"}, "speed"),
        ({"messages": [{"role": "system", "content": "x"}]}, "at least one user message"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
        ({"top_k": "3"}, "top_k"),
    ],
)
def test_refusals_name_the_parameter(body: dict[str, object], word: str) -> None:
    raw = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], **body}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(InvalidRequest) as err:
        ant.parse_messages_request(json.dumps(raw).encode())
    assert word in err.value.message


def test_system_messages_mid_conversation_keep_their_place() -> None:
    """Claude Code 2.1 sends system messages inside ``messages`` (beta
    mid-conversation-system-2026-04-07): text or text blocks, with cache_control."""
    chat, _ = _parse(
        system="top",
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
            },
            {"role": "system", "content": "reminder"},
            {"role": "assistant", "content": "hello"},
            {"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "system", "content": "c"},
            {"role": "user", "content": "again"},
        ],
    )
    roles = [(m.role, m.content) for m in chat.messages]  # type: ignore[attr-defined]
    assert roles == [
        ("system", "top"),
        ("user", "hi"),
        ("system", "reminder"),
        ("assistant", "hello"),
        ("system", "a\n\nb\n\nc"),
        ("user", "again"),
    ]
    # The last message may be a system one: the model answers after it.
    chat, _ = _parse(messages=[{"role": "user", "content": "hi"}, {"role": "system", "content": "x"}])
    assert [m.role for m in chat.messages] == ["user", "system"]  # type: ignore[attr-defined]
    with pytest.raises(UnsupportedParameter) as err:
        _parse(
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "system", "content": [{"type": "image", "source": {}}]},
            ]
        )
    assert "messages.1.content.0.type" in err.value.message


def test_claude_code_fields_are_accepted() -> None:
    """What Claude Code 2.1 sends besides the messages: adaptive thinking, context management,
    effort, cache_control on blocks and tools, and a metadata user_id that is a JSON string."""
    chat, options = _parse(
        thinking={"type": "adaptive"},
        context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        output_config={"effort": "high"},
        metadata={"user_id": '{"device_id":"d","session_id":"s"}'},
        tools=[
            {
                "name": "Read",
                "description": "r",
                "input_schema": {"type": "object"},
                "cache_control": {"type": "ephemeral"},
            }
        ],
        system=[{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        stream=True,
    )
    assert options.thinking and options.stream
    assert [t.name for t in chat.tools] == ["Read"]  # type: ignore[attr-defined]


def test_errors_name_anthropic_fields_not_openai_ones() -> None:
    """The engine names a tool schema it cannot enforce by the core (OpenAI) path; an Anthropic
    client is told the field it sent."""
    exc = UnsupportedParameter(
        "Unsupported schema keyword(s) in 'tools[14].function.parameters': not",
        param="tools[14].function.parameters",
    )
    assert (
        ant.error_body(exc)["error"]["message"]
        == "Unsupported schema keyword(s) in 'tools.14.input_schema': not"
    )
    exc = UnsupportedParameter("The schema in 'response_format.json_schema.schema' cannot be enforced")
    assert "'output_config.format.schema'" in ant.error_body(exc)["error"]["message"]


def test_stream_reports_the_same_input_usage_at_start_and_end() -> None:
    chat, opts = _parse()
    w = ant.EventWriter(chat, "m", opts)  # type: ignore[arg-type]
    start = w.start(Usage(30, 0, 28))[0][1]["message"]["usage"]
    end = w.events(Chunk(text="x", finish_reason="stop", usage=Usage(30, 1, 28)))[-2][1]["usage"]
    assert start == {**end, "output_tokens": 0}
    assert (start["input_tokens"], start["cache_read_input_tokens"]) == (2, 28)


def test_version_header_accepts_dated_versions_only() -> None:
    ant.check_version("2023-06-01")
    ant.check_version("2026-10-21")
    for bad in (None, "latest", "2022-01-01"):
        with pytest.raises(InvalidRequest):
            ant.check_version(bad)


def test_error_envelope_types_follow_status() -> None:
    assert ant.error_body(UnsupportedParameter("x"))["error"]["type"] == "invalid_request_error"
    assert ant.error_body(ApiError("busy", status=503))["error"] == {
        "type": "overloaded_error",
        "message": "busy",
    }
    assert ant.error_body(ApiError("x", status=429))["error"]["type"] == "rate_limit_error"


def test_stop_reasons() -> None:
    opts = ant.MessagesOptions(stop_sequences=["END"])
    assert ant.stop_reason("length", None, opts) == ("max_tokens", None)
    assert ant.stop_reason("tool_calls", None, opts) == ("tool_use", None)
    assert ant.stop_reason("stop", "END", opts) == ("stop_sequence", "END")
    assert ant.stop_reason("stop", "<end_of_turn>", opts) == (
        "end_turn",
        None,
    )  # the template's, not the user's


def test_non_stream_body_has_thinking_text_and_tool_use_blocks() -> None:
    chat, opts = _parse(thinking={"type": "enabled", "budget_tokens": 1024}, max_tokens=2000)
    done = Completion(
        "ok", "tool_calls", Usage(10, 5, 4), reasoning="why", tool_calls=[ToolCall("t1", "f", '{"a": 1}')]
    )
    body = ant.message_body(chat, "m", done, opts)  # type: ignore[arg-type]
    assert [b["type"] for b in body["content"]] == ["thinking", "text", "tool_use"]
    assert body["content"][2]["input"] == {"a": 1}
    assert body["stop_reason"] == "tool_use"
    assert body["usage"] == {
        "input_tokens": 6,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 4,
        "output_tokens": 5,
    }


def test_stream_opens_and_closes_blocks_in_order() -> None:
    chat, opts = _parse(thinking={"type": "adaptive"})
    w = ant.EventWriter(chat, "m", opts)  # type: ignore[arg-type]
    events = w.start(Usage(10))
    for chunk in [
        Chunk(reasoning="r"),
        Chunk(text="a"),
        Chunk(text="b"),
        Chunk(tool_calls=[ToolCall("t1", "f", '{"x":')]),
        Chunk(finish_reason="tool_calls", usage=Usage(10, 3)),
    ]:
        events += w.events(chunk)
    names = [(n, d.get("index")) for n, d in events]
    assert names == [
        ("message_start", None),
        ("ping", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_delta", 2),
        ("content_block_stop", 2),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert events[10][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"x":'}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_empty_answer_still_has_a_text_block() -> None:
    chat, opts = _parse()
    w = ant.EventWriter(chat, "m", opts)  # type: ignore[arg-type]
    events = w.events(Chunk(finish_reason="stop", usage=Usage(3, 1)))
    assert [n for n, _ in events] == [
        "content_block_start",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_reasoning_is_dropped_when_thinking_is_off() -> None:
    chat, opts = _parse()
    w = ant.EventWriter(chat, "m", opts)  # type: ignore[arg-type]
    assert w.events(Chunk(reasoning="secret")) == []


def test_streamed_call_fragments_fill_one_tool_use_block() -> None:
    chat, opts = _parse()
    w = ant.EventWriter(chat, "m", opts)  # type: ignore[arg-type]
    events = []
    for chunk in [
        Chunk(tool_calls=[ToolCall("t1", "f", "")]),
        Chunk(tool_calls=[ToolCall("", "", '{"x"')]),
        Chunk(tool_calls=[ToolCall("", "", ": 1}")]),
        Chunk(tool_calls=[ToolCall("t2", "g", "{}")]),
        Chunk(finish_reason="tool_calls", usage=Usage(3, 5)),
    ]:
        events += w.events(chunk)
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert [(b["id"], b["name"]) for b in starts] == [("t1", "f"), ("t2", "g")]
    parts = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta" and d["index"] == 0]
    assert "".join(parts) == '{"x": 1}'
