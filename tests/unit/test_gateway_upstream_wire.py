"""Upstream wire translation in pure functions: core -> OpenAI / Anthropic bodies, their streams ->
core chunks, the pass-through relay, and how provider failures map onto lumbung's errors."""

from __future__ import annotations

import json

import pytest

from lumbung.engines.base import Collector
from lumbung.engines.http_anthropic import EventReader, messages_body
from lumbung.engines.http_common import retry_after, status_error
from lumbung.engines.http_openai import DONE, ChunkReader, PassThrough, _as_sent, request_body
from lumbung.errors import (
    InvalidRequest,
    ProviderCutOff,
    RateLimited,
    UnsupportedParameter,
    UpstreamError,
    UpstreamTimeout,
)
from lumbung.types import ChatRequest, Message, SamplingParams, Tool, ToolCall


def chat(**kw: object) -> ChatRequest:
    return ChatRequest(model="m", messages=[Message("system", "be brief"), Message("user", "hi")], **kw)  # type: ignore[arg-type]


def test_openai_body_sends_only_what_differs_from_the_defaults() -> None:
    body = request_body(chat())
    assert body == {
        "model": "m",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    }
    body = request_body(chat(sampling=SamplingParams(temperature=0.2, max_tokens=5, stop=["x"], top_k=4)))
    assert (body["temperature"], body["max_tokens"], body["stop"], body["top_k"]) == (0.2, 5, ["x"], 4)
    assert "top_p" not in body and "seed" not in body and "logit_bias" not in body


def test_logit_bias_goes_upstream_to_openai_providers_and_is_refused_for_anthropic_ones() -> None:
    request = chat(sampling=SamplingParams(logit_bias={50256: -100.0, 7: 2.5}))
    assert request_body(request)["logit_bias"] == {"50256": -100.0, "7": 2.5}
    with pytest.raises(UnsupportedParameter) as err:
        messages_body(request)
    assert err.value.param == "logit_bias"


def test_openai_tool_calls_stream_once_named_and_a_call_without_arguments_comes_with_the_finish() -> None:
    reader = ChunkReader("p")
    frames = [
        {"choices": [{"delta": {"role": "assistant", "content": ""}}]},
        {
            "choices": [
                {"delta": {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "get_"}}]}}
            ]
        },
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [{"index": 0, "function": {"name": "weather", "arguments": '{"ci'}}]
                    }
                }
            ]
        },
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Jakarta"}'}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 1, "id": "call_2", "function": {"name": "now"}}]}}]},
        {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 9}},
    ]
    chunks = [reader.read(f) for f in frames]
    # The name may come in pieces: the call opens with its first arguments, then fragments follow.
    assert chunks[:2] == [None, None]
    assert chunks[2] is not None and chunks[2].tool_calls == [ToolCall("call_1", "get_weather", '{"ci', 0)]
    assert chunks[3] is not None and chunks[3].tool_calls == [ToolCall("", "", 'ty":"Jakarta"}', 0)]
    assert chunks[4:] == [None, None, None]
    last = reader.last()  # a call that never had arguments is delivered whole with the finish
    assert last.tool_calls == [ToolCall("call_2", "now", "", 1)]
    assert last.finish_reason == "tool_calls" and last.usage and last.usage.completion_tokens == 9
    collected = Collector()
    for chunk in [*filter(None, chunks), last]:
        collected.add(chunk)
    assert [(c.id, c.name, c.arguments) for c in collected.tool_calls] == [
        ("call_1", "get_weather", '{"city":"Jakarta"}'),
        ("call_2", "now", ""),
    ]


def test_openai_stream_without_a_finish_is_an_error_and_error_frames_raise() -> None:
    reader = ChunkReader("p")
    assert reader.read({"choices": [{"delta": {"content": "Hel"}}]}) is not None
    with pytest.raises(UpstreamError, match="ended before"):
        reader.last()
    with pytest.raises(UpstreamError, match="model crashed"):
        ChunkReader("p").read({"error": {"message": "model crashed"}})


def event(obj: dict[str, object]) -> bytes:
    return json.dumps(obj).encode()


def test_pass_through_holds_events_until_content_then_relays_bytes() -> None:
    relay = PassThrough("p", "m1", "chat", client_usage=False)
    role = event({"model": "m1", "choices": [{"delta": {"role": "assistant", "content": ""}}]})
    first = event({"model": "m1", "choices": [{"delta": {"content": "Hi"}}]})
    assert relay.event(role) is None  # held: failover is still possible
    out = relay.event(first)
    assert out is not None and out.count(b"data: ") == 2 and b'"model": "chat"' in out and b"m1" not in out
    usage = event({"model": "m1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
    assert relay.event(usage) is None  # the client did not ask for usage; it is still counted
    assert relay.usage.prompt_tokens == 3 and relay.usage.completion_tokens == 2
    assert relay.event(b"[DONE]") == DONE


def test_pass_through_error_event_raises_and_usage_is_kept_when_asked() -> None:
    relay = PassThrough("p", "m", "m", client_usage=True)
    with pytest.raises(UpstreamError):
        relay.event(event({"error": {"message": "overloaded", "type": "server_error"}}))
    usage = event({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    assert relay.event(event({"choices": [{"delta": {"content": "x"}}]})) is not None
    assert relay.event(usage) == b"data: " + usage + b"\n\n"
    with pytest.raises(UpstreamError, match="not JSON"):
        PassThrough("p", "m", "m", False).whole(b"<html>")
    with pytest.raises(UpstreamError, match="crashed"):
        PassThrough("p", "m", "m", False).whole(event({"error": {"message": "crashed"}}))


def test_anthropic_body_lifts_system_and_merges_turns() -> None:
    request = ChatRequest(
        model="claude-x",
        messages=[
            Message("system", "be brief"),
            Message("user", "weather?"),
            Message("assistant", None, tool_calls=[ToolCall("t1", "weather", '{"city":"Bogor"}')]),
            Message("tool", "31C", tool_call_id="t1"),
            Message("user", "thanks"),
        ],
        tools=[Tool("weather", "Get weather", {"type": "object"})],
        sampling=SamplingParams(max_tokens=50, temperature=1.5),
    )
    body = messages_body(request)
    assert body["system"] == "be brief" and body["max_tokens"] == 50 and body["temperature"] == 1.0
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Bogor"}}
    ]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": "31C"},
        {"type": "text", "text": "thanks"},
    ]
    assert body["tools"][0]["input_schema"] == {"type": "object"} and body["tool_choice"] == {"type": "auto"}


def test_anthropic_events_become_chunks() -> None:
    reader = EventReader("a")
    events = [
        ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 11}}}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "tu", "name": "f"},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"a":'},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": "1}"},
            },
        ),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 4}},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    chunks = [reader.read(name, data) for name, data in events]
    assert [c.text for c in chunks if c and c.text] == ["Hi"]
    # The call opens when its block starts and its input follows as fragments, as they arrive.
    assert [c.tool_calls for c in chunks if c and c.tool_calls] == [
        [ToolCall("tu", "f", "", 0)],
        [ToolCall("", "", '{"a":', 0)],
        [ToolCall("", "", "1}", 0)],
    ]
    last = reader.last()
    assert last.finish_reason == "tool_calls" and last.tool_calls == []
    assert last.usage and (last.usage.prompt_tokens, last.usage.completion_tokens) == (11, 4)
    with pytest.raises(UpstreamError, match="Overloaded"):
        EventReader("a").read(
            "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        )


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            403,
            {"error": {"code": "unsupported_country_region_territory", "message": "Country not supported"}},
            ProviderCutOff,
        ),
        (401, {"error": {"message": "Your account has been deactivated"}}, ProviderCutOff),
        (451, {"error": {"message": "Unavailable for legal reasons"}}, ProviderCutOff),
        (
            400,
            {
                "message": "Access to Anthropic models is not allowed from unsupported countries, regions, or territories."
            },
            ProviderCutOff,
        ),
        (400, {"error": {"message": "Invalid region parameter for the tool"}}, InvalidRequest),
        (403, {"error": {"message": "Request not allowed"}}, UpstreamError),
        (401, {"error": {"message": "Incorrect API key provided"}}, UpstreamError),
        (429, {"error": {"message": "slow down"}}, RateLimited),
        (400, {"error": {"message": "bad temperature"}}, InvalidRequest),
        (500, {"error": {"message": "oops"}}, UpstreamError),
        (504, {"error": {"message": "gateway timeout"}}, UpstreamTimeout),
    ],
)
def test_status_errors_map_onto_the_error_tree(status: int, body: dict[str, object], kind: type) -> None:
    err = status_error("p", status, {}, json.dumps(body).encode())
    assert type(err) is kind
    if kind is ProviderCutOff:
        assert not isinstance(err, InvalidRequest)


def test_retry_after_in_seconds_milliseconds_and_http_dates() -> None:
    assert retry_after({"retry-after": "7"}) == 7.0
    assert retry_after({"retry-after-ms": "250", "retry-after": "7"}) == 0.25
    assert retry_after({}) is None
    assert 0 <= (retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) or 0) == 0.0
    err = status_error("p", 429, {"retry-after": "12"}, b"{}")
    assert isinstance(err, RateLimited) and err.retry_after == 12.0


def test_an_anthropic_tool_call_without_input_closes_with_an_empty_object() -> None:
    reader = EventReader("a")
    start = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "tool_use", "id": "t", "name": "now"},
    }
    opened = reader.read("content_block_start", start)
    closed = reader.read("content_block_stop", {"type": "content_block_stop", "index": 0})
    assert opened is not None and opened.tool_calls == [ToolCall("t", "now", "", 0)]
    assert closed is not None and closed.tool_calls == [ToolCall("", "", "{}", 0)]


def test_pass_through_sends_the_clients_bytes_when_nothing_must_change() -> None:
    raw = b' {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5}'
    body = json.loads(raw)
    assert _as_sent(raw, body, "m1", False, False) is raw  # whole: untouched
    assert _as_sent(raw, body, "other", False, False) is None  # model renamed: re-encoded
    streamed = _as_sent(raw, {**body, "stream": True}, "m1", True, False)
    assert streamed is not None and json.loads(streamed) == {
        **body,
        "stream_options": {"include_usage": True},
    }
    asked = {**body, "stream_options": {"include_usage": True}}
    assert _as_sent(raw, asked, "m1", True, True) is raw  # usage already on
    assert _as_sent(raw, {**body, "stream_options": {}}, "m1", True, False) is None  # merged, re-encoded
    utf16 = raw.decode().encode("utf-16-le")  # json.loads takes it; upstreams expect UTF-8
    assert _as_sent(utf16, body, "m1", False, False) is None
    assert _as_sent(utf16, {**body, "stream": True}, "m1", True, False) is None
