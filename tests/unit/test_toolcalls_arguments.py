"""Earlier calls' arguments as templates and family renderers see them."""

from __future__ import annotations

import json

from lumbung import toolcalls
from lumbung.toolcalls.arguments import MAX_DEPTH, arguments_value
from lumbung.toolcalls.render import adapt_messages
from lumbung.types import ChatRequest, Message, ToolCall

DEEP = '{"a": ' * 5000 + "1" + "}" * 5000


def test_json_text_is_parsed() -> None:
    assert arguments_value('{"city": "Jakarta"}') == {"city": "Jakarta"}


def test_text_that_is_not_json_stays_text() -> None:
    assert arguments_value("{city: Jakarta") == "{city: Jakarta"


def test_nesting_past_the_limit_stays_text_and_at_the_limit_is_parsed() -> None:
    at = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    past = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    assert arguments_value(at) != at
    assert arguments_value(past) == past
    assert arguments_value(DEEP) == DEEP


def test_family_syntax_history_with_deeply_nested_arguments() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message("user", "Hi"),
            Message("assistant", None, tool_calls=[ToolCall("c1", "f", DEEP)]),
            Message("tool", "ok", tool_call_id="c1"),
        ],
    )
    messages, _ = adapt_messages(request, toolcalls.get("hermes"), "{{ messages }}")
    assert json.dumps(DEEP) in (messages[1].content or "")  # the client's text, as a JSON string
