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
        (
            {
                "tools": [
                    {
                        "type": "custom",
                        "name": "apply_patch",
                        "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"},
                    }
                ]
            },
            "tools[0].format",
        ),
        ({"tools": [{"type": "custom"}]}, "tools[0].name"),
        ({"tools": [{"type": "computer_use_preview"}]}, "tools[0].type"),
        ({"tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search"}}, "tool_choice"),
        ({"tools": [{"type": "file_search"}], "tool_choice": "required"}, "tool_choice"),
        (
            {"tools": [{"type": "namespace", "name": "n", "tools": [{"type": "custom", "name": "x"}]}]},
            "tools[0].tools[0].type",
        ),
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
        call, "m", status="completed", output=orr.output_items(done, False, call.tools), usage=done.usage
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


CODEX_TOOLS = [
    {"type": "function", "name": "exec_command", "parameters": {"type": "object"}, "strict": False},
    {
        "type": "namespace",
        "name": "multi_agent_v1",
        "description": "Sub-agents.",
        "tools": [
            {"type": "function", "name": "spawn_agent", "parameters": {"type": "object"}},
            {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
        ],
    },
    {"type": "web_search", "external_web_access": False},
]


def test_namespace_tools_are_flattened_and_calls_report_their_namespace() -> None:
    """Codex CLI 0.171 groups its sub-agent tools in a namespace and offers web_search: the model
    sees the functions (a name two places use is qualified by its namespace), web_search is left
    out, and a call comes back with the namespace and the function's own name, as OpenAI's does."""
    call = _call(tools=CODEX_TOOLS, tool_choice="auto")
    assert [t.name for t in call.request.tools] == [
        "exec_command",
        "spawn_agent",
        "multi_agent_v1__exec_command",
    ]
    done = Completion(
        "",
        "tool_calls",
        Usage(5, 3),
        tool_calls=[ToolCall("c1", "spawn_agent", "{}"), ToolCall("c2", "exec_command", "{}")],
    )
    output = orr.output_items(done, False, call.tools)
    assert [(i.get("namespace"), i["name"]) for i in output] == [
        ("multi_agent_v1", "spawn_agent"),
        (None, "exec_command"),
    ]
    body = orr.response_body(call, "m", status="completed", output=output, usage=done.usage)
    assert [t["type"] for t in body["tools"]] == ["function", "namespace", "web_search"]
    # The call comes back as an input item with its namespace: the model sees its own call again.
    again = _call(
        tools=CODEX_TOOLS,
        input=[
            {"role": "user", "content": "go"},
            {
                "type": "function_call",
                "call_id": "c1",
                "namespace": "multi_agent_v1",
                "name": "exec_command",
                "arguments": "{}",
            },
            {"type": "function_call_output", "call_id": "c1", "output": "done"},
        ],
    )
    assert again.messages[1].tool_calls[0].name == "multi_agent_v1__exec_command"
    writer = ResponseEventWriter(call, "m")
    events = _run(
        writer,
        [
            Chunk(tool_calls=[ToolCall("c1", "spawn_agent", "{}")]),
            Chunk(finish_reason="tool_calls", usage=Usage(3, 2)),
        ],
    )
    added = [b["item"] for k, b in events if k == "response.output_item.added"]
    assert added[0]["namespace"] == "multi_agent_v1" and added[0]["name"] == "spawn_agent"  # type: ignore[index]


def test_a_call_cut_by_max_output_tokens_is_incomplete_whole_and_streamed() -> None:
    call = _call(tools=CODEX_TOOLS)
    done = Completion("", "length", Usage(5, 3), tool_calls=[ToolCall("c1", "exec_command", '{"cmd":"l')])
    whole = orr.output_items(done, False, call.tools)
    writer = ResponseEventWriter(call, "m")
    events = _run(
        writer,
        [
            Chunk(tool_calls=[ToolCall("c1", "exec_command", '{"cmd":"l')]),
            Chunk(finish_reason="length", usage=Usage(5, 3)),
        ],
    )
    streamed = events[-1][1]["response"]["output"]  # type: ignore[index]
    assert [i["status"] for i in whole] == [i["status"] for i in streamed] == ["incomplete"]  # type: ignore[union-attr]
    # Only the item that was cut: what came before it was done.
    done = Completion("Let me look.", "length", Usage(5, 3), tool_calls=[ToolCall("c1", "exec_command", "{")])
    assert [i["status"] for i in orr.output_items(done, False, call.tools)] == ["completed", "incomplete"]


def test_output_item_added_announces_an_empty_message() -> None:
    """The first text arrives as a delta after the announcement; announced inside the item too, a
    client that accumulates the deltas onto the announced item shows it twice."""
    writer = ResponseEventWriter(_call(), "m")
    events = writer.start() + writer.events(Chunk(text="Hello"))
    wire = [json.loads(json.dumps(b)) for _, b in events]  # as serialised, after the events were made
    added = [b for b in wire if b["type"] == "response.output_item.added"]
    assert added[0]["item"]["content"] == []
    assert [b["delta"] for b in wire if b["type"] == "response.output_text.delta"] == ["Hello"]


def test_errors_name_the_field_the_client_sent() -> None:
    from lumbung.errors import UnsupportedParameter
    from lumbung.surfaces.openai_responses_tools import in_wire_terms

    call = _call(tools=CODEX_TOOLS)
    exc = in_wire_terms(
        UnsupportedParameter(
            "Unsupported schema keyword(s) in 'tools[1].function.parameters': not",
            param="tools[1].function.parameters",
        ),
        call.tools,
    )
    assert exc.param == "tools[1].tools[0].parameters" and "'tools[1].tools[0].parameters'" in exc.message
    exc = in_wire_terms(UnsupportedParameter("bad", param="response_format.json_schema.schema"), call.tools)
    assert exc.param == "text.format.schema"


CLIENT_TOOLS = [
    {"type": "custom", "name": "apply_patch", "description": "Edit files.", "format": {"type": "text"}},
    {"type": "local_shell"},
    {"type": "apply_patch"},
]
CLIENT_CALLS = [
    ToolCall("c1", "apply_patch", json.dumps({"input": "*** Begin Patch\n*** End Patch"})),
    ToolCall("c2", "local_shell", json.dumps({"command": ["ls", "-l"], "working_directory": "/tmp"})),
]


def test_client_tools_are_functions_to_the_model_and_calls_come_in_their_own_items() -> None:
    """A custom tool takes free text (one string argument ``input``), local_shell a command; their
    calls are reported as OpenAI reports them (``custom_tool_call``, ``local_shell_call``)."""
    call = _call(tools=CLIENT_TOOLS[:2], tool_choice="auto")
    assert [(t.name, sorted(t.parameters["properties"])) for t in call.request.tools] == [
        ("apply_patch", ["input"]),
        ("local_shell", ["command", "timeout_ms", "working_directory"]),
    ]
    done = Completion("", "tool_calls", Usage(5, 3), tool_calls=CLIENT_CALLS)
    body = orr.response_body(
        call, "m", status="completed", output=orr.output_items(done, False, call.tools), usage=done.usage
    )
    validate(body, "Response")
    custom, shell = body["output"]
    assert (custom["type"], custom["name"], custom["input"]) == (
        "custom_tool_call",
        "apply_patch",
        "*** Begin Patch\n*** End Patch",
    )
    assert shell["type"] == "local_shell_call"
    assert shell["action"] == {
        "type": "exec",
        "command": ["ls", "-l"],
        "env": {},
        "working_directory": "/tmp",
    }
    assert [t["type"] for t in body["tools"]] == ["custom", "local_shell"]


def test_apply_patch_tool_calls_report_the_operation() -> None:
    call = _call(tools=CLIENT_TOOLS[2:])
    operation = {"type": "update_file", "path": "a.py", "diff": "@@\n-x\n+y\n"}
    done = Completion(
        "",
        "tool_calls",
        Usage(5, 3),
        tool_calls=[ToolCall("c3", "apply_patch", json.dumps({"operation": operation}))],
    )
    output = orr.output_items(done, False, call.tools)
    assert output[0]["type"] == "apply_patch_call" and output[0]["operation"] == operation
    assert output[0]["call_id"] == "c3" and output[0]["status"] == "completed"


def test_client_tool_calls_and_outputs_sent_back_become_the_same_calls_and_results() -> None:
    tools = [{"type": "custom", "name": "edit"}, *CLIENT_TOOLS[1:]]  # a custom tool and apply_patch
    again = _call(
        tools=tools,
        input=[
            {"role": "user", "content": "go"},
            {"type": "custom_tool_call", "call_id": "c1", "name": "edit", "input": "*** Begin Patch"},
            {"type": "custom_tool_call_output", "call_id": "c1", "output": "patched"},
            {
                "type": "local_shell_call",
                "id": "lsh_1",
                "call_id": "c2",
                "status": "completed",
                "action": {"type": "exec", "command": ["ls"], "env": {}},
            },
            {"type": "local_shell_call_output", "id": "c2", "output": "a.py"},
            {
                "type": "apply_patch_call",
                "call_id": "c3",
                "status": "completed",
                "operation": {"type": "delete_file", "path": "a.py"},
            },
            {"type": "apply_patch_call_output", "call_id": "c3", "status": "completed"},
        ],
    )
    calls = [
        (m.tool_calls[0].id, m.tool_calls[0].name, json.loads(m.tool_calls[0].arguments))
        for m in again.messages
        if m.tool_calls
    ]
    assert calls == [
        ("c1", "edit", {"input": "*** Begin Patch"}),
        ("c2", "local_shell", {"command": ["ls"]}),
        ("c3", "apply_patch", {"operation": {"type": "delete_file", "path": "a.py"}}),
    ]
    results = [(m.tool_call_id, m.content) for m in again.messages if m.role == "tool"]
    assert results == [("c1", "patched"), ("c2", "a.py"), ("c3", "completed")]


def test_streamed_client_tool_calls_are_sent_whole_in_their_items() -> None:
    call = _call(tools=CLIENT_TOOLS[:2])
    writer = ResponseEventWriter(call, "m")
    half = len(CLIENT_CALLS[0].arguments) // 2
    events = _run(
        writer,
        [
            Chunk(tool_calls=[ToolCall("c1", "apply_patch", CLIENT_CALLS[0].arguments[:half])]),
            Chunk(tool_calls=[ToolCall("", "", CLIENT_CALLS[0].arguments[half:])]),
            Chunk(tool_calls=[CLIENT_CALLS[1]]),
            Chunk(finish_reason="tool_calls", usage=Usage(3, 2)),
        ],
    )
    kinds = [k for k, _ in events]
    assert kinds[2:] == [
        "response.output_item.added",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.output_item.done",
        "response.completed",
    ]
    output = events[-1][1]["response"]["output"]  # type: ignore[index]
    assert [i["type"] for i in output] == ["custom_tool_call", "local_shell_call"]  # type: ignore[index]
    assert output[0]["input"] == "*** Begin Patch\n*** End Patch"  # type: ignore[index]


def test_a_required_tool_among_several_cut_before_its_name_names_max_output_tokens() -> None:
    """The core's error names Chat Completions' ``max_tokens``; the Responses client sent
    ``max_output_tokens``."""
    from lumbung.surfaces.openai_responses_tools import in_wire_terms

    call = _call(tools=CODEX_TOOLS, tool_choice="required", max_output_tokens=2)
    exc = in_wire_terms(
        InvalidRequest(
            "max_tokens: the answer was cut before the name of the tool call it must make was "
            "complete; raise max_tokens.",
            param="max_tokens",
        ),
        call.tools,
    )
    assert exc.param == "max_output_tokens" and "max_tokens" not in exc.message
