"""OpenAI's logit_bias on the real model over HTTP, through the `openai` SDK: -100 bans the token greedy
decoding would have chosen, +100 forces one, and an id outside the vocabulary is a 400 naming it."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from lumbung.engines.llamacpp.model import LlamaModel
from lumbung.store.embedded import GEMMA, embedded_model_path
from tests.support.server import ServerProcess

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def vocab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaModel]:
    model = LlamaModel(embedded_model_path(tmp_path_factory.mktemp("home"), GEMMA), vocab_only=True)
    yield model
    model.close()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="anything", max_retries=0) as c:
        yield c


def first_token(vocab: LlamaModel, text: str) -> int:
    ids = vocab.tokenize(text, add_special=False)
    assert ids and vocab.piece(ids[0]).decode() == text[: len(vocab.piece(ids[0]))]
    return ids[0]


def test_completions_ban_the_greedy_token_and_force_another(client: openai.OpenAI, vocab: LlamaModel) -> None:
    def complete(**extra: object) -> str:
        done = client.completions.create(
            model="gemma3:270m", prompt=PROMPT, max_tokens=1, temperature=0, **extra
        )  # type: ignore[call-overload]
        return str(done.choices[0].text)

    greedy = complete()
    banned = first_token(vocab, greedy)
    assert complete(logit_bias={str(banned): -100}) != greedy
    forced = first_token(vocab, " banana")
    assert complete(logit_bias={str(forced): 100}) == vocab.piece(forced).decode()


def test_chat_bans_and_forces_on_the_greedy_path_and_when_sampling(
    client: openai.OpenAI, vocab: LlamaModel
) -> None:
    ask = [{"role": "user", "content": "Name one colour."}]

    def chat(**extra: object) -> str:
        done = client.chat.completions.create(model="gemma3:270m", messages=ask, max_tokens=1, **extra)  # type: ignore[call-overload]
        return str(done.choices[0].message.content)

    greedy = chat(temperature=0)
    banned = first_token(vocab, greedy)
    assert chat(temperature=0, logit_bias={str(banned): -100}) != greedy
    forced = first_token(vocab, "Banana")
    for temperature in (0, 0.8):
        assert (
            chat(temperature=temperature, seed=1, logit_bias={str(forced): 100})
            == vocab.piece(forced).decode()
        )


def test_a_token_id_outside_the_vocabulary_is_a_400_naming_logit_bias(
    client: openai.OpenAI, vocab: LlamaModel
) -> None:
    for create in (
        lambda bias: client.completions.create(
            model="gemma3:270m", prompt=PROMPT, max_tokens=1, logit_bias=bias
        ),
        lambda bias: client.chat.completions.create(
            model="gemma3:270m", messages=[{"role": "user", "content": "hi"}], max_tokens=1, logit_bias=bias
        ),
    ):
        with pytest.raises(openai.BadRequestError) as err:
            create({str(vocab.n_vocab): -100})
        body = err.value.body
        assert isinstance(body, dict) and body["param"] == "logit_bias"
        assert str(vocab.n_vocab - 1) in body["message"]
