"""Chat templates: the GGUF's own Jinja template rendered in Jinja's sandbox, or a built-in one.

Templates see the Hugging Face conventions (``messages``, ``tools``, ``add_generation_prompt``,
``bos_token``, ``eos_token``, ``raise_exception``, ``strftime_now``), so GGUF templates work as
written by their authors.
"""

from __future__ import annotations

import datetime
import json
from importlib import resources
from typing import Any

from jinja2 import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from lumbung.errors import ConfigError, InvalidRequest
from lumbung.toolcalls.arguments import arguments_value
from lumbung.types import Message, Tool

BUILTIN = ("gemma", "chatml")
# Text that ends an assistant turn in each built-in format (the model may emit it as plain text).
_TURN_END = {"gemma": ["<end_of_turn>"], "chatml": ["<|im_end|>"]}
# Architectures whose GGUFs may lack a template, and the built-in format they were trained on.
_ARCH_DEFAULT = {"gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3n": "gemma"}


def builtin_source(name: str) -> str:
    if name not in BUILTIN:
        raise ConfigError(f"unknown built-in chat template {name!r}; built-in: {', '.join(BUILTIN)}")
    return (resources.files(__package__) / "templates" / f"{name}.jinja").read_text(encoding="utf-8")


def _raise(message: str) -> None:
    raise TemplateError(message)


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False, **_: Any) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


_env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
_env.filters["tojson"] = _tojson
_env.globals["raise_exception"] = _raise
_env.globals["strftime_now"] = _strftime_now


def message_dict(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": arguments_value(call.arguments)},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    if message.reasoning:
        out["reasoning_content"] = message.reasoning
    return out


def tool_dict(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters or {"type": "object"}}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


class ChatTemplate:
    """A compiled chat template with the special tokens it refers to."""

    def __init__(self, source: str, *, bos_token: str, eos_token: str, name: str = "gguf") -> None:
        self.name = name
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        try:
            self._template = _env.from_string(source)
        except TemplateError as exc:
            raise ConfigError(f"chat template {name!r} does not compile: {exc}") from exc
        self.stop_strings: list[str] = list(_TURN_END.get(name, []))

    def render(
        self,
        messages: list[Message],
        *,
        tools: list[Tool] | None = None,
        add_generation_prompt: bool = True,
        **extra: Any,
    ) -> str:
        context: dict[str, Any] = {
            "messages": [message_dict(m) for m in messages],
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            **extra,
        }
        if tools:
            context["tools"] = [tool_dict(t) for t in tools]
        try:
            return self._template.render(context)
        except TemplateError as exc:
            raise InvalidRequest(f"the model's chat template refused these messages: {exc}") from exc
        except RecursionError as exc:  # a template's recursive macro on a deeply nested message
            raise InvalidRequest("the model's chat template recursed too deeply on these messages") from exc


def select_template(
    *, override: str | None, gguf_template: str | None, architecture: str, bos_token: str, eos_token: str
) -> ChatTemplate:
    """Pick, in order: the configured template, the GGUF's own, the architecture's built-in, ChatML."""
    if override:
        if override in BUILTIN:
            return ChatTemplate(
                builtin_source(override), bos_token=bos_token, eos_token=eos_token, name=override
            )
        return ChatTemplate(override, bos_token=bos_token, eos_token=eos_token, name="config")
    if gguf_template:
        return ChatTemplate(gguf_template, bos_token=bos_token, eos_token=eos_token, name="gguf")
    name = _ARCH_DEFAULT.get(architecture, "chatml")
    return ChatTemplate(builtin_source(name), bos_token=bos_token, eos_token=eos_token, name=name)
