"""The `anthropic` SDK against a real `lumbung serve` with the embedded model."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import httpx
import pytest

from tests.support.server import ServerProcess

HELLO = [{"role": "user", "content": "Write a short poem about rice barns."}]
GREEDY = {"temperature": 0}  # this SDK no longer types sampling parameters; older clients send them
HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "anything"}


@pytest.fixture
def client(server: ServerProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.base_url, api_key="anything", max_retries=0) as c:
        yield c


def _sse(text: str) -> list[tuple[str, dict[str, object]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_message_shape_and_usage(client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(
        model="gemma3:270m", max_tokens=12, messages=HELLO, extra_body=GREEDY, system="You are terse."
    )
    msg = raw.parse()
    assert msg.id.startswith("msg_") and msg.type == "message" and msg.role == "assistant"
    assert msg.model == "gemma3:270m"
    assert [b.type for b in msg.content] == ["text"] and msg.content[0].text  # type: ignore[union-attr]
    assert msg.stop_reason == "max_tokens" and msg.stop_sequence is None
    assert msg.usage.output_tokens == 12 and msg.usage.input_tokens > 0
    assert raw.headers["request-id"]


def _total(usage: anthropic.types.Usage) -> int:
    return usage.input_tokens + (usage.cache_read_input_tokens or 0)


def test_system_blocks_equal_system_string(client: anthropic.Anthropic) -> None:
    # Greedy text is compared between requests that all find the prompt in the prefix cache: a miss and
    # a hit may round differently (the engine's concern, not this surface's).
    client.messages.create(
        model="gemma3:270m", max_tokens=8, messages=HELLO, extra_body=GREEDY, system="Be kind."
    )
    as_text = client.messages.create(
        model="gemma3:270m", max_tokens=8, messages=HELLO, extra_body=GREEDY, system="Be kind."
    )
    as_blocks = client.messages.create(
        model="gemma3:270m",
        max_tokens=8,
        messages=HELLO,
        extra_body=GREEDY,
        system=[{"type": "text", "text": "Be kind.", "cache_control": {"type": "ephemeral"}}],
    )
    assert as_text.content == as_blocks.content
    assert _total(as_text.usage) == _total(as_blocks.usage)


def test_count_tokens_matches_message_usage(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(model="gemma3:270m", messages=HELLO, system="You are terse.")
    msg = client.messages.create(model="gemma3:270m", max_tokens=1, messages=HELLO, system="You are terse.")
    assert counted.input_tokens == msg.usage.input_tokens + (msg.usage.cache_read_input_tokens or 0)
    longer = client.messages.count_tokens(
        model="gemma3:270m", messages=HELLO, system="You are terse. Really."
    )
    assert longer.input_tokens > counted.input_tokens


def test_stream_event_sequence_is_exact(server: ServerProcess) -> None:
    body = {"model": "gemma3:270m", "max_tokens": 6, "messages": HELLO, "stream": True, "temperature": 0}
    r = httpx.post(server.base_url + "/v1/messages", json=body, headers=HEADERS, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = _sse(r.text)
    names = [name for name, _ in events]
    assert all(name == data["type"] for name, data in events)
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None  # type: ignore[index]
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 6  # type: ignore[index]
    usage = delta["usage"]
    assert usage["input_tokens"] + usage["cache_read_input_tokens"] == start["usage"]["input_tokens"]  # type: ignore[index]


def test_stream_helpers_and_final_message(client: anthropic.Anthropic) -> None:
    # Greedy text is compared between requests that all find the prompt in the prefix cache: a miss and
    # a hit may round differently (the engine's concern, not this surface's).
    client.messages.create(model="gemma3:270m", max_tokens=10, messages=HELLO, extra_body=GREEDY)
    with client.messages.stream(
        model="gemma3:270m", max_tokens=10, messages=HELLO, extra_body=GREEDY
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    whole = client.messages.create(model="gemma3:270m", max_tokens=10, messages=HELLO, extra_body=GREEDY)
    assert text == final.content[0].text == whole.content[0].text  # type: ignore[union-attr]
    assert final.usage.output_tokens == 10 and _total(final.usage) == _total(whole.usage)
    assert final.stop_reason == "max_tokens"


async def test_async_client_stream(server: ServerProcess) -> None:
    async with anthropic.AsyncAnthropic(base_url=server.base_url, api_key="x", max_retries=0) as client:
        stream = client.messages.stream(model="gemma3:270m", max_tokens=5, messages=HELLO)
        async with stream as events:
            final = await events.get_final_message()
    assert final.usage.output_tokens == 5


def test_stop_sequence_is_reported(client: anthropic.Anthropic) -> None:
    client.messages.create(
        model="gemma3:270m", max_tokens=24, messages=HELLO, extra_body=GREEDY
    )  # warm the cache
    free = client.messages.create(model="gemma3:270m", max_tokens=24, messages=HELLO, extra_body=GREEDY)
    text = free.content[0].text  # type: ignore[union-attr]
    words = [w for w in text.split() if len(w) >= 3]
    assert len(words) >= 3, text
    stop = words[2]
    cut = client.messages.create(
        model="gemma3:270m",
        max_tokens=24,
        messages=HELLO,
        extra_body=GREEDY,
        stop_sequences=[stop, "never-xyz"],
    )
    assert cut.stop_reason == "stop_sequence" and cut.stop_sequence == stop
    assert cut.content[0].text == text[: text.index(stop)]  # type: ignore[union-attr]
    with client.messages.stream(
        model="gemma3:270m", max_tokens=24, messages=HELLO, extra_body=GREEDY, stop_sequences=[stop]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == stop


def test_top_k_and_metadata_and_multi_turn(client: anthropic.Anthropic) -> None:
    msg = client.messages.create(
        model="gemma3:270m",
        max_tokens=4,
        extra_body={"top_k": 1, "top_p": 0.9},
        metadata={"user_id": "u-1"},
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
            {"role": "user", "content": [{"type": "text", "text": "Name a colour."}]},
        ],
    )
    greedy = client.messages.create(
        model="gemma3:270m",
        max_tokens=4,
        extra_body=GREEDY,
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Name a colour."},
        ],
    )
    assert msg.content == greedy.content  # top_k=1 is greedy


def test_thinking_is_accepted_and_validated(client: anthropic.Anthropic) -> None:
    msg = client.messages.create(
        model="gemma3:270m",
        max_tokens=2048,
        messages=HELLO,
        thinking={"type": "enabled", "budget_tokens": 1024},
        stop_sequences=["\n"],
    )
    assert msg.content and msg.content[-1].type == "text"
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(
            model="gemma3:270m",
            max_tokens=1000,
            messages=HELLO,
            thinking={"type": "enabled", "budget_tokens": 1024},
        )
    assert err.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_claude_code_style_request(client: anthropic.Anthropic) -> None:
    """A Claude-Code-style request: long system blocks, several tools, thinking, tool history."""
    tools = [
        {
            "name": f"tool_{i}",
            "description": "Does a thing. " * 20,
            "input_schema": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        }
        for i in range(12)
    ]
    history = [
        {"role": "user", "content": "Read the file."},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": "toolu_1", "name": "tool_0", "input": {"path": "a.txt"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "hello"}],
                },
                {"type": "text", "text": "Now summarise it."},
            ],
        },
    ]
    system = [{"type": "text", "text": "You are an agent. " * 200, "cache_control": {"type": "ephemeral"}}]
    counted = client.messages.count_tokens(model="gemma3:270m", messages=history, system=system, tools=tools)
    bare = client.messages.count_tokens(model="gemma3:270m", messages=history, system=system)
    assert counted.input_tokens >= bare.input_tokens > 1000
    msg = client.messages.create(
        model="gemma3:270m",
        max_tokens=64,
        messages=history,
        system=system,
        tools=tools,
        tool_choice={"type": "auto"},
        thinking={"type": "disabled"},
    )
    assert msg.stop_reason in {"end_turn", "tool_use", "max_tokens"}
    for block in msg.content:
        if block.type == "tool_use":
            assert block.name.startswith("tool_") and isinstance(block.input, dict)


def test_claude_code_2_1_request_shape(server: ServerProcess) -> None:
    """What Claude Code 2.1 sends: system messages inside ``messages`` (beta
    mid-conversation-system-2026-04-07, here last, as it sends them), adaptive thinking,
    context_management, effort, cache_control on blocks, betas in a header and the query."""
    body = {
        "model": "gemma3:270m",
        "max_tokens": 8,
        "stream": True,
        "system": [{"type": "text", "text": "You are an agent.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "Say hi", "cache_control": {"type": "ephemeral"}}],
            },
            {"role": "system", "content": "Available agent types: none."},
        ],
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "metadata": {"user_id": '{"device_id":"d","session_id":"s"}'},
    }
    headers = {**HEADERS, "anthropic-beta": "claude-code-20250219,mid-conversation-system-2026-04-07"}
    r = httpx.post(server.base_url + "/v1/messages?beta=true", json=body, headers=headers, timeout=120)
    assert r.status_code == 200, r.text
    names = [name for name, _ in _sse(r.text)]
    assert names[0] == "message_start" and names[-1] == "message_stop"


def test_errors_name_the_anthropic_field(server: ServerProcess) -> None:
    """A strict tool schema the engine cannot enforce is named as the client sent it
    (``input_schema``), not by the core request's OpenAI path."""
    bad = {"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}
    tools = [
        {"name": "ok", "input_schema": {"type": "object"}},
        {"name": "f", "strict": True, "input_schema": bad},
    ]
    body = {"model": "gemma3:270m", "max_tokens": 5, "messages": HELLO, "tools": tools}
    r = httpx.post(server.base_url + "/v1/messages", json=body, headers=HEADERS, timeout=60)
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    assert "tools.1.input_schema" in message and "function" not in message, message


def test_stream_usage_is_the_same_at_start_and_end(start_server: object) -> None:
    """With the prefix cache on, the second request reads most of its prompt from the cache:
    message_start says so, and message_delta repeats the same input figures."""
    srv = start_server()  # type: ignore[operator]
    body = {
        "model": "gemma3:270m",
        "max_tokens": 3,
        "stream": True,
        "messages": HELLO,
        "system": "Be terse. " * 20,
    }
    for _ in range(2):
        r = httpx.post(srv.base_url + "/v1/messages", json=body, headers=HEADERS, timeout=120)
        events = _sse(r.text)
        start = events[0][1]["message"]["usage"]  # type: ignore[index]
        end = events[-2][1]["usage"]
        assert start == {**end, "output_tokens": 0}, (start, end)  # type: ignore[dict-item]
    assert start["cache_read_input_tokens"] > 0 and start["input_tokens"] > 0


def test_refusals_use_the_anthropic_envelope(server: ServerProcess) -> None:
    url = server.base_url + "/v1/messages"
    cases = [
        ({"model": "gemma3:270m", "messages": HELLO}, "max_tokens"),
        (
            {
                "model": "gemma3:270m",
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/png", "data": "AA=="},
                            }
                        ],
                    }
                ],
            },
            "image",
        ),
        (
            {
                "model": "gemma3:270m",
                "max_tokens": 5,
                "messages": HELLO,
                "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            },
            "web_search_20250305",
        ),
        (
            {
                "model": "gemma3:270m",
                "max_tokens": 5,
                "messages": [*HELLO, {"role": "assistant", "content": "Rice"}],
            },
            "prefill",
        ),
        (
            {"model": "gemma3:270m", "max_tokens": 5, "messages": HELLO, "mcp_servers": [{"url": "x"}]},
            "mcp_servers",
        ),
        ({"model": "gemma3:270m", "max_tokens": 5, "messages": HELLO, "temperature": 1.5}, "temperature"),
    ]
    for body, word in cases:
        r = httpx.post(url, json=body, headers=HEADERS, timeout=30)
        assert r.status_code == 400, (body, r.text)
        err = r.json()
        assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
        assert word in err["error"]["message"], err
    r = httpx.post(url, content=b"{not json", headers=HEADERS)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(
        url, json={"model": "gemma3:270m", "max_tokens": 5, "messages": HELLO}, headers={"x-api-key": "k"}
    )
    assert r.status_code == 400 and "anthropic-version" in r.json()["error"]["message"]
    r = httpx.post(url, json={"model": "nope", "max_tokens": 5, "messages": HELLO}, headers=HEADERS)
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"


def test_api_key_is_read_from_x_api_key(start_server: object) -> None:
    srv = start_server(env={"LUMBUNG_API_KEYS": "sekret"})  # type: ignore[operator]
    with anthropic.Anthropic(base_url=srv.base_url, api_key="sekret", max_retries=0) as good:
        assert good.messages.count_tokens(model="gemma3:270m", messages=HELLO).input_tokens > 0
    with (
        anthropic.Anthropic(base_url=srv.base_url, api_key="wrong", max_retries=0) as bad,
        pytest.raises(anthropic.AuthenticationError) as err,
    ):
        bad.messages.create(model="gemma3:270m", max_tokens=3, messages=HELLO)
    assert err.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


def test_forced_tool_use_whole_and_streamed(client: anthropic.Anthropic) -> None:
    """tool_choice 'tool' makes even this small model call the tool, with input that fits the schema."""
    ask = [{"role": "user", "content": "What is the weather in Jakarta?"}]
    msg = client.messages.create(
        model="gemma3:270m",
        max_tokens=64,
        messages=ask,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        extra_body=GREEDY,
    )
    assert msg.stop_reason == "tool_use"
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert len(uses) == 1 and uses[0].name == "get_weather" and isinstance(uses[0].input["city"], str)
    with client.messages.stream(
        model="gemma3:270m",
        max_tokens=64,
        messages=ask,
        tools=[WEATHER],
        tool_choice={"type": "any"},
        extra_body=GREEDY,
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    assert any(e.type == "content_block_delta" and e.delta.type == "input_json_delta" for e in events)
    used = [b for b in final.content if b.type == "tool_use"]
    assert final.stop_reason == "tool_use" and used and isinstance(used[0].input["city"], str)


# Claude Code's tool set as it sends it: maps with propertyNames, lists with uniqueItems, no strict.
CLAUDE_CODE_LIKE_TOOL = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "command": {"type": "string", "maxLength": 40},
            "env": {
                "type": "object",
                "propertyNames": {"type": "string"},
                "additionalProperties": {"type": "string"},
            },
            "flags": {
                "type": "array",
                "items": {"type": "string", "maxLength": 10},
                "uniqueItems": True,
                "maxItems": 2,
            },
        },
        "required": ["command"],
        "additionalProperties": False,
    },
}


def test_an_input_schema_without_strict_is_best_effort_and_with_strict_enforced_or_refused(
    client: anthropic.Anthropic,
) -> None:
    ask = [{"role": "user", "content": "List the files."}]
    done = client.messages.create(
        model="gemma3:270m",
        max_tokens=80,
        messages=ask,  # type: ignore[arg-type]
        tools=[CLAUDE_CODE_LIKE_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "any"},
        extra_body=GREEDY,
    )
    calls = [b for b in done.content if b.type == "tool_use"]
    assert calls and calls[0].name == "Bash" and isinstance(calls[0].input, dict)
    strict = {**CLAUDE_CODE_LIKE_TOOL, "strict": True}
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(
            model="gemma3:270m",
            max_tokens=8,
            messages=ask,  # type: ignore[arg-type]
            tools=[strict],  # type: ignore[list-item]
            tool_choice={"type": "any"},
        )
    assert "uniqueItems" in str(err.value) and "propertyNames" not in str(err.value)
