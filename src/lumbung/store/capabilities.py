"""What a stored model's chat template supports (tools, reasoning), read from its GGUF without
loading it: ``lumbung show`` prints it. The same rules as the engine's: the GGUF's own template, else
the architecture's built-in one (templates.py); the tool-call family from ``toolcalls.detect``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lumbung import toolcalls
from lumbung.engines.llamacpp.templates import builtin_source, default_builtin
from lumbung.store.gguf_info import read_gguf


@dataclass(frozen=True)
class TemplateFacts:
    template: str  # "gguf" or the built-in's name
    tools_in_template: bool  # the template renders `tools` itself (else lumbung writes them)
    tool_format: str  # the family whose call syntax is rendered and parsed
    reasoning: bool  # the template writes or expects <think> blocks
    reasoning_switch: bool  # it has `enable_thinking` (chat_template_kwargs, Ollama's think)


def template_facts(template: str | None, architecture: str) -> TemplateFacts:
    """Pure: the facts of a template text (None: the model has none) for an architecture."""
    name = "gguf"
    if not template:
        name = default_builtin(architecture)
        template = builtin_source(name)
    fmt = toolcalls.detect(override=None, template=template, architecture=architecture)
    return TemplateFacts(
        template=name,
        tools_in_template="tools" in template,
        tool_format=fmt.name,
        reasoning="<think>" in template or "reasoning_content" in template,
        reasoning_switch="enable_thinking" in template,
    )


def gguf_template_facts(path: Path) -> TemplateFacts:
    info = read_gguf(path)
    template = info.get("tokenizer.chat_template")
    return template_facts(template if isinstance(template, str) else None, info.architecture or "")
