"""Tool-call formats per model family: render, forced-call grammar and incremental parse.

The family comes from the model config (``tool_format``), else the chat template's text, else the
GGUF architecture; ``detect`` documents the order.
"""

from __future__ import annotations

from lumbung.errors import ConfigError
from lumbung.toolcalls.base import CallParser, Parsed, ParsedCall, ToolFormat
from lumbung.toolcalls.deepseek import DeepSeekFormat
from lumbung.toolcalls.gemma import GemmaFormat
from lumbung.toolcalls.hermes import HermesFormat
from lumbung.toolcalls.llama3 import Llama3Format
from lumbung.toolcalls.mistral import MistralFormat
from lumbung.toolcalls.qwen3_coder import Qwen3CoderFormat

FORMATS: dict[str, ToolFormat] = {
    f.name: f
    for f in (
        HermesFormat(),
        Qwen3CoderFormat(),
        Llama3Format(),
        MistralFormat(),
        DeepSeekFormat(),
        GemmaFormat(),
    )
}
# Text found in a chat template, checked in order: the first match names the family.
_TEMPLATE_SIGNS = (
    ("<function=", "qwen3_coder"),
    ("<tool_call>", "hermes"),
    ("[TOOL_CALLS]", "mistral"),
    ("tool▁calls▁begin", "deepseek"),
    ("<|python_tag|>", "llama3"),
    ("```tool_call", "gemma"),
)
_ARCH_FAMILY = {
    "qwen2": "hermes",
    "qwen3": "hermes",
    "qwen3moe": "hermes",
    "llama": "llama3",
    "mistral": "mistral",
    "deepseek2": "deepseek",
    "deepseek3": "deepseek",
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
    "gemma3n": "gemma",
}


def get(name: str) -> ToolFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(f"unknown tool_format {name!r}; known: {', '.join(FORMATS)}") from None


def detect(*, override: str | None, template: str, architecture: str) -> ToolFormat:
    """The configured format, else the first family whose markers the template uses, else the
    architecture's, else Hermes (the most common convention among fine-tunes)."""
    if override:
        return get(override)
    for sign, name in _TEMPLATE_SIGNS:
        if sign in template:
            return FORMATS[name]
    return FORMATS[_ARCH_FAMILY.get(architecture, "hermes")]


__all__ = ["FORMATS", "CallParser", "Parsed", "ParsedCall", "ToolFormat", "detect", "get"]
