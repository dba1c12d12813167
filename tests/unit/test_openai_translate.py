"""OpenAI Chat Completions <-> core types, without a server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lumbung.errors import InvalidRequest, UnsupportedParameter
from lumbung.surfaces.openai import ChunkWriter, completion_body, parse_chat_request
from lumbung.types import ChatRequest, Chunk, Completion, Message, Usage
from tests.support.spec import validate


def parse(**body: Any) -> tuple[ChatRequest, Any]:
    body.setdefault("model", "m")
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return parse_chat_request(json.dumps(body).encode())


def test_defaults_follow_openai() -> None:
    request, options = parse()
    assert request.sampling.temperature == 1.0 and request.sampling.top_p == 1.0
    assert request.sampling.max_tokens is None and request.sampling.stop == []
    assert not options.stream and not options.include_usage
    assert request.id.startswith("chatcmpl-")


def test_sampling_and_limits_are_mapped() -> None:
    request, _ = parse(
        temperature=0, top_p=0.5, seed=9, stop="END", presence_penalty=1, frequency_penalty=-1, max_tokens=7
    )
    s = request.sampling
    assert (
        s.temperature,
        s.top_p,
        s.seed,
        s.stop,
        s.presence_penalty,
        s.frequency_penalty,
        s.max_tokens,
    ) == (
        0,
        0.5,
        9,
        ["END"],
        1,
        -1,
        7,
    )
    request, _ = parse(max_tokens=7, max_completion_tokens=3)
    assert request.sampling.max_tokens == 3


def test_messages_developer_role_and_text_parts() -> None:
    request, _ = parse(
        messages=[
            {"role": "developer", "content": "rules"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ]
    )
    roles = [m.role for m in request.messages]
    assert roles == ["system", "user", "assistant", "tool"]
    assert request.messages[1].content == "a\nb"
    assert request.messages[2].tool_calls[0].name == "f"
    assert request.messages[3].tool_call_id == "c1"


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"audio": {"voice": "x"}}, "audio"),
        ({"store": True}, "store"),
        ({"service_tier": "flex"}, "service_tier"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "messages[0].content[0].type",
        ),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
    ],
)
def test_what_cannot_be_honoured_is_refused_by_name(patch: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedParameter) as err:
        parse(**patch)
    assert err.value.param == param and err.value.status == 400


def test_logprobs_ask_the_engine_and_top_logprobs_needs_logprobs() -> None:
    request, options = parse(logprobs=True, top_logprobs=3)
    assert request.sampling.logprobs == 3 and options.logprobs
    request, _ = parse(logprobs=True)
    assert request.sampling.logprobs == 0
    with pytest.raises(InvalidRequest) as err:
        parse(top_logprobs=2)
    assert err.value.param == "top_logprobs"


def test_tool_message_needs_its_call_id() -> None:
    with pytest.raises(InvalidRequest) as err:
        parse(messages=[{"role": "tool", "content": "x"}])
    assert err.value.param == "messages[0].tool_call_id"


def test_unknown_fields_are_reported_for_logging() -> None:
    _, options = parse(vendor_x=1, other=True)
    assert options.extra_fields == ["other", "vendor_x"]


def request() -> ChatRequest:
    return ChatRequest(model="m", messages=[Message("user", "hi")], id="chatcmpl-1", created=1)


def test_completion_body_matches_schema() -> None:
    body = completion_body(request(), "m", Completion("hello", "stop", Usage(5, 2, 1)))
    validate(body, "CreateChatCompletionResponse")
    assert body["usage"]["total_tokens"] == 7
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 1


def test_stream_framing_role_first_finish_last_usage_after() -> None:
    writer = ChunkWriter(request(), "m", include_usage=True)
    bodies = writer.bodies(Chunk(text="he")) + writer.bodies(Chunk(text="llo"))
    bodies += writer.bodies(Chunk(text="", finish_reason="stop", usage=Usage(3, 2)))
    for body in bodies:
        validate(body, "CreateChatCompletionStreamResponse")
    assert bodies[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert [b["choices"][0]["delta"].get("content") for b in bodies[1:3]] == ["he", "llo"]
    assert bodies[3]["choices"][0]["finish_reason"] == "stop" and bodies[3]["choices"][0]["delta"] == {}
    assert bodies[4]["choices"] == [] and bodies[4]["usage"]["completion_tokens"] == 2
    assert all(b["usage"] is None for b in bodies[:4])


def test_stream_without_usage_has_no_usage_key() -> None:
    writer = ChunkWriter(request(), "m", include_usage=False)
    bodies = writer.bodies(Chunk(text="x", finish_reason="length", usage=Usage(1, 1)))
    assert all("usage" not in b for b in bodies)
    assert bodies[-1]["choices"][0]["finish_reason"] == "length"


def test_n_choices_are_indexed_and_usage_counts_the_prompt_once() -> None:
    from lumbung.surfaces.openai import choice_requests

    chat, options = parse_chat_request(
        json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 3, "seed": 7}).encode()
    )
    assert options.n == 3
    assert [r.sampling.seed for r in choice_requests(chat, 3)] == [7, 8, 9]
    body = completion_body(
        chat, "m", Completion("a", "stop", Usage(5, 2)), Completion("b", "length", Usage(5, 4))
    )
    validate(body, "CreateChatCompletionResponse")
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert body["usage"]["prompt_tokens"] == 5 and body["usage"]["completion_tokens"] == 6
    writer = ChunkWriter(chat, "m", include_usage=True, n=2)
    out = writer.bodies(Chunk(text="a", finish_reason="stop", usage=Usage(5, 1)), 1)
    assert [c["choices"][0]["index"] for c in out] == [1, 1, 1] and "usage" not in str(out[-1]["choices"])
    out = writer.bodies(Chunk(text="b", finish_reason="stop", usage=Usage(5, 1)), 0)
    assert out[-1]["choices"] == [] and out[-1]["usage"]["completion_tokens"] == 2


def test_logit_bias_maps_token_ids_and_clamps_values_as_openai_does() -> None:
    request, _ = parse(logit_bias={"15": 3, "7": 250, "99": -400.5})
    assert request.sampling.logit_bias == {15: 3.0, 7: 100.0, 99: -100.0}


@pytest.mark.parametrize("key", ["abc", "-1", "1.5", ""])
def test_a_logit_bias_key_that_is_not_a_token_id_is_a_400_naming_it(key: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse(logit_bias={key: 1})
    assert err.value.param == "logit_bias" and err.value.status == 400


def test_choices_and_prompts_carry_how_many_run_at_once() -> None:
    from lumbung.surfaces.openai import choice_requests
    from lumbung.surfaces.openai_completions import parse_completion_request

    chat, _ = parse_chat_request(
        json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    )
    assert [r.fanout for r in choice_requests(chat, 3)] == [3, 3, 3]
    assert choice_requests(chat, 1)[0].fanout == 1
    call = parse_completion_request(json.dumps({"model": "m", "prompt": ["a", "b"], "n": 3}).encode())
    assert [r.fanout for r in call.requests] == [6] * 6
    assert len({r.id for r in call.requests}) == 1  # one API request: its sequences are siblings


@pytest.mark.parametrize(
    ("wire", "inputs"),
    [
        ("hello", ["hello"]),
        (["a", "b"], ["a", "b"]),
        ([1, 2, 3], [[1, 2, 3]]),  # one input as token ids
        ([[1, 2], [3]], [[1, 2], [3]]),  # several
    ],
)
def test_embedding_input_as_text_or_token_ids(wire: object, inputs: object) -> None:
    from lumbung.surfaces.openai_embeddings import parse_embedding_request

    assert parse_embedding_request(json.dumps({"model": "m", "input": wire}).encode()).inputs == inputs


@pytest.mark.parametrize("wire", [[], ["a", 1], [[1], "a"], [[1], [2.5]], [True]])
def test_embedding_input_mixtures_and_empties_are_400(wire: object) -> None:
    from lumbung.surfaces.openai_embeddings import parse_embedding_request

    with pytest.raises(InvalidRequest) as err:
        parse_embedding_request(json.dumps({"model": "m", "input": wire}).encode())
    assert err.value.param is not None and err.value.param.startswith("input")


def test_speculative_extension_switches_drafts_per_request() -> None:
    assert parse()[0].sampling.speculative is None  # the model's setting
    assert parse(speculative=True)[0].sampling.speculative is True
    assert parse(speculative=False)[0].sampling.speculative is False
    with pytest.raises(InvalidRequest) as err:
        parse(speculative="yes")
    assert err.value.param == "speculative"
