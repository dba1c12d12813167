"""The `openai` SDK's legacy completions and embeddings against a real server and the real model."""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.support.server import ServerProcess
from tests.support.spec import validate

PROMPT = "The rice barn stood at the edge of the village, and"


@pytest.fixture
def client(server: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="anything", max_retries=0) as c:
        yield c


def test_completion_matches_openai_schema(client: openai.OpenAI) -> None:
    raw = client.completions.with_raw_response.create(
        model="gemma3:270m", prompt=PROMPT, max_tokens=8, temperature=0
    )
    body = json.loads(raw.text)
    validate(body, "CreateCompletionResponse")
    done = raw.parse()
    assert done.id.startswith("cmpl-") and done.object == "text_completion" and done.model == "gemma3:270m"
    assert done.choices[0].finish_reason == "length" and done.choices[0].text
    assert done.usage and done.usage.completion_tokens == 8
    assert done.usage.total_tokens == done.usage.prompt_tokens + 8


def test_default_max_tokens_is_16(client: openai.OpenAI) -> None:
    done = client.completions.create(model="gemma3:270m", prompt=PROMPT, temperature=0)
    assert done.usage and done.usage.completion_tokens <= 16
    assert done.choices[0].finish_reason == "length" or done.usage.completion_tokens < 16


def test_stream_equals_whole_and_validates(client: openai.OpenAI) -> None:
    client.completions.create(
        model="gemma3:270m", prompt=PROMPT, max_tokens=8, temperature=0
    )  # warm the cache
    whole = client.completions.create(
        model="gemma3:270m", prompt=PROMPT, max_tokens=8, temperature=0, echo=True
    )
    chunks = list(
        client.completions.create(
            model="gemma3:270m",
            prompt=PROMPT,
            max_tokens=8,
            temperature=0,
            echo=True,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    for chunk in chunks:
        body = chunk.model_dump(exclude_unset=True)
        for choice in body["choices"]:
            # OpenAI streams finish_reason null until the last chunk; its schema does not say nullable.
            choice["finish_reason"] = choice["finish_reason"] or "stop"
        validate(body, "CreateCompletionResponse")
    assert chunks[-1].choices == [] and chunks[-1].usage and chunks[-1].usage.completion_tokens == 8
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole.choices[0].text and text.startswith(PROMPT) and len(text) > len(PROMPT)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"


def test_n_and_several_prompts_give_indexed_choices(client: openai.OpenAI) -> None:
    done = client.completions.create(
        model="gemma3:270m", prompt=[PROMPT, "Once upon a time"], n=2, max_tokens=6, temperature=1.0, seed=11
    )
    assert [c.index for c in done.choices] == [0, 1, 2, 3]
    assert done.choices[0].text != done.choices[1].text or done.choices[2].text != done.choices[3].text
    single = client.completions.create(model="gemma3:270m", prompt=PROMPT, max_tokens=1)
    assert done.usage and single.usage
    assert done.usage.completion_tokens == 24
    streamed = list(
        client.completions.create(
            model="gemma3:270m", prompt=PROMPT, n=3, max_tokens=4, stream=True, seed=5, temperature=1.0
        )
    )
    by_index: dict[int, str] = {}
    for chunk in streamed:
        for choice in chunk.choices:
            by_index[choice.index] = by_index.get(choice.index, "") + choice.text
    finished = [c.choices[0].index for c in streamed if c.choices and c.choices[0].finish_reason]
    assert sorted(by_index) == [0, 1, 2] and sorted(finished) == [0, 1, 2]


def test_stop_and_best_of_and_refusals(client: openai.OpenAI, server: ServerProcess) -> None:
    client.completions.create(
        model="gemma3:270m", prompt=PROMPT, max_tokens=12, temperature=0
    )  # warm the cache
    free = client.completions.create(model="gemma3:270m", prompt=PROMPT, max_tokens=12, temperature=0)
    words = free.choices[0].text.split()
    assert len(words) >= 2
    cut = client.completions.create(
        model="gemma3:270m", prompt=PROMPT, max_tokens=12, temperature=0, stop=words[1], best_of=1
    )
    assert cut.choices[0].finish_reason == "stop" and words[1] not in cut.choices[0].text
    for extra, param in [
        ({"suffix": "end"}, "suffix"),
        ({"best_of": 3}, "best_of"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"logit_bias": {"x": 2}}, "logit_bias"),
        ({"echo": True, "logprobs": 1}, "echo"),
    ]:
        body = {"model": "gemma3:270m", "prompt": PROMPT, "max_tokens": 2, **extra}
        r = httpx.post(server.base_url + "/v1/completions", json=body, timeout=30)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == param


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    texts = ["The cat sat on the mat.", "A cat is sitting on a rug.", "Quarterly revenue grew ten percent."]
    raw = client.embeddings.with_raw_response.create(
        model="gemma3:270m", input=texts, encoding_format="float"
    )
    validate(json.loads(raw.text), "CreateEmbeddingResponse")
    done = raw.parse()
    vectors = [d.embedding for d in done.data]
    assert [d.index for d in done.data] == [0, 1, 2] and done.model == "gemma3:270m"
    assert all(math.isclose(_cos(v, v), 1.0, rel_tol=1e-4) for v in vectors)  # normalised
    assert _cos(vectors[0], vectors[1]) > _cos(vectors[0], vectors[2])  # similar texts are nearer
    assert done.usage.prompt_tokens == done.usage.total_tokens > len(texts)
    b64 = httpx.post(
        f"{client.base_url}embeddings",
        json={"model": "gemma3:270m", "input": texts[0], "encoding_format": "base64"},
    ).json()
    packed = base64.b64decode(b64["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(packed) // 4}f", packed)
    assert all(math.isclose(x, y, abs_tol=1e-6) for x, y in zip(decoded, vectors[0], strict=True))
    sdk_default = client.embeddings.create(model="gemma3:270m", input=texts[0])  # the SDK asks for base64
    assert all(
        math.isclose(x, y, abs_tol=1e-6)
        for x, y in zip(sdk_default.data[0].embedding, vectors[0], strict=True)
    )


def test_embeddings_dimensions_and_bad_input(client: openai.OpenAI) -> None:
    one = client.embeddings.create(model="gemma3:270m", input="hello")
    native = len(one.data[0].embedding)
    assert (
        len(client.embeddings.create(model="gemma3:270m", input="hello", dimensions=native).data[0].embedding)
        == native
    )
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="gemma3:270m", input="hello", dimensions=64)
    assert err.value.param == "dimensions"
    for bad in ([], [""], [[]], [[1, 2], [10**9]], ["text", 1], [[1], ["text"]]):
        with pytest.raises(openai.BadRequestError) as err:
            client.embeddings.create(model="gemma3:270m", input=bad)  # type: ignore[arg-type]
        assert err.value.param == "input"


def test_embeddings_of_token_ids_as_openai_allows(client: openai.OpenAI, server: ServerProcess) -> None:
    """``input`` as one list of token ids, or a list of them: the same vectors as the text."""
    from lumbung.engines.llamacpp.model import LlamaModel
    from lumbung.store.embedded import GEMMA, embedded_model_path

    texts = ["The cat sat on the mat.", "Quarterly revenue grew ten percent."]
    vocab = LlamaModel(embedded_model_path(server.home, GEMMA), vocab_only=True)
    try:
        ids = [vocab.tokenize(t, add_special=True, parse_special=False) for t in texts]
        n_vocab = vocab.n_vocab
    finally:
        vocab.close()
    by_text = client.embeddings.create(model="gemma3:270m", input=texts, encoding_format="float")
    by_ids = client.embeddings.create(model="gemma3:270m", input=ids, encoding_format="float")
    one = client.embeddings.create(model="gemma3:270m", input=ids[1], encoding_format="float")
    assert by_ids.usage.prompt_tokens == by_text.usage.prompt_tokens == len(ids[0]) + len(ids[1])
    for got, want in (
        (by_ids.data[0], by_text.data[0]),
        (by_ids.data[1], by_text.data[1]),
        (one.data[0], by_text.data[1]),
    ):
        assert all(
            math.isclose(x, y, abs_tol=1e-5) for x, y in zip(got.embedding, want.embedding, strict=True)
        )
    raw = httpx.post(f"{client.base_url}embeddings", json={"model": "gemma3:270m", "input": ids})
    assert raw.status_code == 200
    validate(raw.json(), "CreateEmbeddingResponse")
    bad = httpx.post(
        f"{client.base_url}embeddings", json={"model": "gemma3:270m", "input": [ids[0], [7, n_vocab]]}
    )
    error = bad.json()["error"]
    assert bad.status_code == 400 and error["param"] == "input" and error["type"] == "invalid_request_error"
    assert "'input[1][1]'" in error["message"] and f"token id {n_vocab}" in error["message"]


def test_embedding_model_from_config(start_server: object, server: ServerProcess) -> None:
    """A GGUF configured with `embedding: true` embeds and refuses to generate text."""
    path = next((server.home / "models").rglob("*.gguf"))
    srv = start_server(
        config={
            "serve_default_model": False,  # type: ignore[operator]
            "models": [{"id": "embedder", "path": str(path), "embedding": True}],
        }
    )
    with openai.OpenAI(base_url=srv.base_url + "/v1", api_key="x", max_retries=0) as c:
        assert len(c.embeddings.create(model="embedder", input="hello").data[0].embedding) > 0
        with pytest.raises(openai.BadRequestError) as err:
            c.completions.create(model="embedder", prompt="hi", max_tokens=2)
    assert "embedding model" in err.value.message


def test_chat_n_choices_whole_and_streamed(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Name a fruit."}]
    raw = client.chat.completions.with_raw_response.create(
        model="gemma3:270m",
        messages=messages,
        n=3,
        max_tokens=5,
        temperature=1.0,
        seed=3,  # type: ignore[arg-type]
    )
    validate(json.loads(raw.text), "CreateChatCompletionResponse")
    done = raw.parse()
    assert [c.index for c in done.choices] == [0, 1, 2]
    assert done.usage and done.usage.completion_tokens == 15
    single = client.chat.completions.create(model="gemma3:270m", messages=messages, max_tokens=5)  # type: ignore[arg-type]
    assert single.usage and done.usage.prompt_tokens == single.usage.prompt_tokens
    chunks = list(
        client.chat.completions.create(
            model="gemma3:270m",
            messages=messages,
            n=2,
            max_tokens=4,
            stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )
    )
    for chunk in chunks:
        validate(chunk.model_dump(exclude_unset=True), "CreateChatCompletionStreamResponse")
    roles = [c.choices[0].index for c in chunks if c.choices and c.choices[0].delta.role]
    finished = [c.choices[0].index for c in chunks if c.choices and c.choices[0].finish_reason]
    assert sorted(roles) == [0, 1] and sorted(finished) == [0, 1]
    assert chunks[-1].choices == [] and chunks[-1].usage and chunks[-1].usage.completion_tokens == 8
