"""The embedded default model (SmolLM2 135M Instruct) answers questions in words, through each API's
own client. The assertions hold for this model's answers, not for one exact text."""

from __future__ import annotations

import anthropic
import ollama
import openai

from tests.support.server import ServerProcess

QUESTION = "What is the capital of Indonesia?"


def test_openai_client_gets_an_answer(server: ServerProcess) -> None:
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="none") as client:
        done = client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": QUESTION}], max_tokens=40, temperature=0
        )
    assert done.model == "smollm2:135m" and done.choices[0].finish_reason == "stop"
    assert "Jakarta" in (done.choices[0].message.content or "")


def test_anthropic_client_gets_an_answer(server: ServerProcess) -> None:
    with anthropic.Anthropic(base_url=server.base_url, api_key="none") as client:
        msg = client.messages.create(
            model="default",
            max_tokens=40,
            messages=[{"role": "user", "content": QUESTION}],
            extra_body={"temperature": 0},  # this SDK no longer types sampling parameters
        )
    assert msg.model == "smollm2:135m" and msg.stop_reason == "end_turn"
    assert msg.content[0].type == "text" and "Jakarta" in msg.content[0].text


def test_ollama_client_gets_an_answer_streamed(server: ServerProcess) -> None:
    with ollama.Client(host=server.base_url) as client:
        parts = list(
            client.chat(
                model="default",
                messages=[{"role": "user", "content": QUESTION}],
                stream=True,
                options={"temperature": 0, "num_predict": 40},
            )
        )
    assert parts[-1].done and parts[-1].done_reason == "stop" and parts[-1].model == "smollm2:135m"
    assert "Jakarta" in "".join(p.message.content or "" for p in parts)


def test_the_default_answers_with_words_when_it_may_run_to_the_end(server: ServerProcess) -> None:
    """No max_tokens: the answer ends where the model ends it, in sentences."""
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="none") as client:
        done = client.chat.completions.create(
            model="default",
            messages=[{"role": "user", "content": "Name three colours of the rainbow."}],
            temperature=0,
        )
    text = done.choices[0].message.content or ""
    assert done.choices[0].finish_reason == "stop" and len(text.split()) >= 3
    assert sum(colour in text.lower() for colour in ("red", "orange", "yellow", "green", "blue")) >= 2
