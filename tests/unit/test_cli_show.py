"""`lumbung show`: what a model's template supports, its adapters, catalogue names not yet pulled;
and stored LoRA adapters are shown as adapters and never served as models of their own."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
from click.testing import CliRunner, Result

from lumbung.cli import main
from lumbung.settings import load_settings
from lumbung.store.capabilities import template_facts
from lumbung.store.serving import served_manifests
from lumbung.store.store import ModelStore
from tests.support.gguf_files import write_gguf

QWEN3_LIKE = (
    "{% if tools %}<tools>{{ tools | tojson }}</tools>{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>{% endif %}"
    "<tool_call>"
)


def test_a_template_with_tools_and_a_thinking_switch() -> None:
    facts = template_facts(QWEN3_LIKE, "qwen3")
    assert facts.template == "gguf" and facts.tools_in_template and facts.tool_format == "hermes"
    assert facts.reasoning and facts.reasoning_switch


def test_no_template_means_the_architectures_built_in_one() -> None:
    facts = template_facts(None, "gemma3")
    assert facts.template == "gemma" and facts.tool_format == "gemma" and not facts.reasoning
    plain = template_facts("{% for m in messages %}{{ m.content }}{% endfor %}", "llama")
    assert not plain.tools_in_template and plain.tool_format == "llama3" and not plain.reasoning


def write_adapter(path: Path) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", 8.0)
    writer.add_tensor("blk.0.attn_q.weight.lora_a", np.ones((2, 4), dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight.lora_b", np.ones((4, 2), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def invoke(tmp_path: Path) -> object:
    def run(*args: str) -> Result:
        env = {"LUMBUNG_HOME": str(tmp_path / "home"), "LUMBUNG_CONFIG": ""}
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return run


def test_show_lists_template_support_and_the_configured_adapters(invoke: object, tmp_path: Path) -> None:
    run = invoke  # type: ignore[assignment]
    model = write_gguf(tmp_path / "m.gguf", arch="qwen3", chat_template=QWEN3_LIKE)
    adapter = write_adapter(tmp_path / "sql.gguf")
    assert run("pull", f"file:{model}").exit_code == 0
    assert run("pull", f"file:{adapter}").exit_code == 0
    config = tmp_path / "c.yaml"
    config.write_text(
        f"models:\n  - id: m\n    ref: 'file:{model}'\n    adapters:\n"
        f"      - {{name: sql, ref: 'file:{adapter}', scale: 0.5}}\n"
    )
    out = run("show", f"file:{model}", "--config", str(config)).output
    assert "template    the GGUF's own" in out
    assert "tools       yes: the template renders them; calls in hermes syntax" in out
    assert "reasoning   yes, switchable" in out
    assert f"  m+sql  scale 0.5  file:{adapter}" in out
    assert "context     2048 tokens trained" in out

    shown = run("show", f"file:{adapter}").output
    assert "adapter     LoRA adapter for llama models" in shown and "\ntemplate " not in shown
    settings, _ = load_settings(None, environ={"LUMBUNG_HOME": str(tmp_path / "home")})
    served = [m.name for m, _ in served_manifests(settings, ModelStore(settings.home), set())]
    assert served == [f"file:{model}"]  # the adapter is not a model of its own


def test_show_a_catalogue_name_not_pulled(invoke: object) -> None:
    out = invoke("show", "sailor:7b")  # type: ignore[operator]
    assert out.exit_code == 0
    assert "not pulled" in out.output and "licence     apache-2.0" in out.output and "regional" in out.output
    missing = invoke("show", "no-such-thing")  # type: ignore[operator]
    assert missing.exit_code == 1 and "not in the store" in missing.output
