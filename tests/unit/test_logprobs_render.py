"""Core token log-probabilities rendered in each API's shape, validated against OpenAI's schemas."""

from __future__ import annotations

import json
import math

from lumbung.surfaces import logprobs as lp
from lumbung.surfaces import openai_completions as oc
from lumbung.surfaces import openai_responses as orr
from lumbung.surfaces.openai import ChunkWriter, completion_body, parse_chat_request
from lumbung.types import Chunk, Completion, TokenLogprob, Usage
from tests.support.spec import validate

TOKENS = [
    TokenLogprob("Hel", -0.1, list(b"Hel"), [("Hel", -0.1), ("Hi", -2.5)]),
    TokenLogprob("lo", -0.3, None, [("lo", -0.3), ("p", -1.9)]),
]


def test_chat_whole_and_streamed() -> None:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode()
    chat, _ = parse_chat_request(body)
    done = Completion("Hello", "length", Usage(3, 2), logprobs=TOKENS)
    whole = completion_body(chat, "m", done, logprobs=True)
    validate(whole, "CreateChatCompletionResponse")
    content = whole["choices"][0]["logprobs"]["content"]
    assert [c["token"] for c in content] == ["Hel", "lo"] and content[1]["bytes"] == list(b"lo")
    assert content[0]["top_logprobs"][1] == {"token": "Hi", "logprob": -2.5, "bytes": list(b"Hi")}
    assert completion_body(chat, "m", done)["choices"][0]["logprobs"] is None  # not asked: null
    writer = ChunkWriter(chat, "m", include_usage=False, logprobs=True)
    chunks = writer.bodies(Chunk(text="Hello", logprobs=TOKENS))
    for c in chunks:
        validate(c, "CreateChatCompletionStreamResponse")
    assert chunks[-1]["choices"][0]["logprobs"]["content"][0]["token"] == "Hel"


def test_legacy_offsets_follow_the_echoed_prompt() -> None:
    call = oc.parse_completion_request(b'{"model": "m", "prompt": "Say", "max_tokens": 2}')
    call.logprobs = 1
    body = oc.completion_body(call, "m", [Completion("Hello", "length", Usage(1, 2), logprobs=TOKENS)])
    validate(body, "CreateCompletionResponse")
    got = body["choices"][0]["logprobs"]
    assert got["tokens"] == ["Hel", "lo"] and got["text_offset"] == [0, 3]
    assert got["top_logprobs"][0] == {"Hel": -0.1, "Hi": -2.5}
    assert lp.openai_legacy(TOKENS, 3)["text_offset"] == [3, 6]


def test_responses_output_text_logprobs() -> None:
    call = orr.parse_create(b'{"model": "m", "input": "x"}')
    done = Completion("Hello", "stop", Usage(1, 2), logprobs=TOKENS)
    body = orr.response_body(
        call, "m", status="completed", output=orr.output_items(done, True, call.tools), usage=done.usage
    )
    validate(body, "Response")
    part = body["output"][0]["content"][0]
    assert [t["token"] for t in part["logprobs"]] == ["Hel", "lo"]
    assert math.isclose(sum(t["logprob"] for t in part["logprobs"]), -0.4)


def test_ollama_shape() -> None:
    out = lp.ollama(TOKENS)
    assert out[0]["token"] == "Hel" and out[0]["top_logprobs"][1] == {
        "token": "Hi",
        "logprob": -2.5,
        "bytes": list(b"Hi"),
    }
