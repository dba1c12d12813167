"""Tool-call formats per model family: render, forced-call grammar and incremental parse.

The family comes from the model config (``tool_format``), else the chat template's text, else the
GGUF architecture; ``detect`` documents the order.
"""

from __future__ import annotations

from lumbung.errors import ConfigError
from lumbung.toolcalls.apertus import ApertusFormat
from lumbung.toolcalls.atem import AtemFormat
from lumbung.toolcalls.base import CallParser, Parsed, ParsedCall, ToolFormat
from lumbung.toolcalls.command_r import CommandRFormat
from lumbung.toolcalls.command_r_plus import CommandRPlusFormat
from lumbung.toolcalls.deepseek import DeepSeekFormat
from lumbung.toolcalls.deepseek_dsml import DeepSeekV4Format, DeepSeekV32Format
from lumbung.toolcalls.firefunction import FireFunctionFormat
from lumbung.toolcalls.functionary import FunctionaryV31Format
from lumbung.toolcalls.functionary_v3_2 import FunctionaryV32Format
from lumbung.toolcalls.gemma import GemmaFormat
from lumbung.toolcalls.gemma4 import Gemma4Format
from lumbung.toolcalls.gigachat import GigaChat3Format, GigaChatFormat
from lumbung.toolcalls.glm import GlmFormat
from lumbung.toolcalls.harmony import HarmonyFormat
from lumbung.toolcalls.hermes import HermesFormat
from lumbung.toolcalls.hy3 import Hy3Format
from lumbung.toolcalls.kimi_k2 import KimiK2Format
from lumbung.toolcalls.kimi_k3 import KimiK3Format
from lumbung.toolcalls.lfm import LfmFormat
from lumbung.toolcalls.llama3 import Llama3Format
from lumbung.toolcalls.minicpm import MiniCpmFormat
from lumbung.toolcalls.minimax_m2 import MiniMaxM2Format
from lumbung.toolcalls.minimax_m3 import MiniMaxM3Format
from lumbung.toolcalls.mistral import MistralFormat
from lumbung.toolcalls.qwen3_coder import Qwen3CoderFormat
from lumbung.toolcalls.seed_oss import SeedOssFormat
from lumbung.toolcalls.solar_open import SolarOpenFormat
from lumbung.toolcalls.tool_calls_json import NemotronFormat, ToolCallsJsonFormat

FORMATS: dict[str, ToolFormat] = {
    f.name: f
    for f in (
        HermesFormat(),
        Qwen3CoderFormat(),
        Llama3Format(),
        MistralFormat(),
        DeepSeekFormat(),
        GemmaFormat(),
        HarmonyFormat(),
        Gemma4Format(),
        GlmFormat(),
        KimiK2Format(),
        DeepSeekV32Format(),
        DeepSeekV4Format(),
        MiniMaxM2Format(),
        SeedOssFormat(),
        ToolCallsJsonFormat(),
        CommandRFormat(),
        KimiK3Format(),
        NemotronFormat(),
        GigaChatFormat(),
        ApertusFormat(),
        FireFunctionFormat(),
        CommandRPlusFormat(),
        Hy3Format(),
        SolarOpenFormat(),
        LfmFormat(),
        GigaChat3Format(),
        MiniMaxM3Format(),
        FunctionaryV31Format(),
        AtemFormat(),
        FunctionaryV32Format(),
        MiniCpmFormat(),
    )
}
# Text found in a chat template, checked in order: the first match names the family.
# ruff: noqa: RUF001  (DeepSeek's DSML markers use fullwidth bars on purpose)
_TEMPLATE_SIGNS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("<atem:function_calls>",), "atem"),
    (("<|channel|>",), "harmony"),
    (("<|tool_call>",), "gemma4"),
    (("<|tool_calls_section_begin|>",), "kimi_k2"),
    (("<|open|>", "<|sep|>"), "kimi_k3"),
    (("｜DSML｜", "function_calls>"), "deepseek_v3_2"),
    (("｜DSML｜",), "deepseek_v4"),
    (("<tool_sep{}>",), "hy3"),
    (("<|tool_call:begin|>",), "solar_open"),
    (("<|tool_call_start|>[",), "lfm"),
    (("<arg_key>",), "glm"),
    (("<minimax:tool_call>",), "minimax_m2"),
    (("]<]minimax[>[",), "minimax_m3"),
    (("<seed:tool_call>",), "seed_oss"),
    (("<tool_calls>",), "tool_calls_json"),
    (("<|START_ACTION|>",), "command_r"),
    (("<|CHATBOT_TOKEN|>", "Action:"), "command_r_plus"),
    (("<TOOLCALL>",), "nemotron"),
    (("<|function_call|>",), "gigachat"),
    (("<|role_sep|>", "function call"), "gigachat3"),
    (("<|tools_prefix|>",), "apertus"),
    (("functools[",), "firefunction"),
    (("<function=", "<|python_tag|>"), "functionary_v3_1"),
    (("<function=",), "qwen3_coder"),
    (("<tool_call>",), "hermes"),
    (("[TOOL_CALLS]",), "mistral"),
    (("tool▁calls▁begin",), "deepseek"),
    (("'>>>all",), "functionary_v3_2"),
    (("<tool_sep>", "<param name="), "minicpm"),
    (("<|python_tag|>",), "llama3"),
    (("```tool_call",), "gemma"),
    (("<|start_header_id|>",), "llama3"),  # Llama 3.2's template names no marker of its calls
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
    "gemma4": "gemma4",
    "gpt-oss": "harmony",
    "glm4moe": "glm",
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
    for signs, name in _TEMPLATE_SIGNS:
        if all(sign in template for sign in signs):
            return FORMATS[name]
    return FORMATS[_ARCH_FAMILY.get(architecture, "hermes")]


__all__ = ["FORMATS", "CallParser", "Parsed", "ParsedCall", "ToolFormat", "detect", "get"]
