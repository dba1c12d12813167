"""Chat templates: the GGUF's own Jinja template rendered in Jinja's sandbox, or a built-in one.

Templates see the Hugging Face conventions (``messages``, ``tools``, ``add_generation_prompt``,
``bos_token``, ``eos_token``, ``raise_exception``, ``strftime_now``, ``tojson`` with its options,
loop controls, ``{% generation %}`` blocks), so GGUF templates work as written by their authors.
The sandbox lets a template change the lists and dicts it builds (Kimi's templates append to
theirs); every render gets its own copies of the messages and tools. What a template needs of the
messages themselves (``template_fixes``) is probed once, when the template is compiled.
"""

from __future__ import annotations

import copy
import datetime
import json
from collections.abc import Iterable
from importlib import resources
from typing import Any

from jinja2 import TemplateError, Undefined, meta, nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment

from lumbung.engines.llamacpp import template_fixes
from lumbung.errors import ConfigError, InvalidRequest
from lumbung.toolcalls.arguments import arguments_value
from lumbung.types import Message, Tool

BUILTIN = ("gemma", "chatml")
# Text that ends an assistant turn in each built-in format (the model may emit it as plain text).
_TURN_END = {"gemma": ["<end_of_turn>"], "chatml": ["<|im_end|>"]}
# Architectures whose GGUFs may lack a template, and the built-in format they were trained on.
_ARCH_DEFAULT = {"gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3n": "gemma"}


def default_builtin(architecture: str) -> str:
    """The built-in template a model without its own gets (``select_template``'s last two steps)."""
    return _ARCH_DEFAULT.get(architecture, "chatml")


def builtin_source(name: str) -> str:
    if name not in BUILTIN:
        raise ConfigError(f"unknown built-in chat template {name!r}; built-in: {', '.join(BUILTIN)}")
    return (resources.files(__package__) / "templates" / f"{name}.jinja").read_text(encoding="utf-8")


def _raise(message: str) -> None:
    raise TemplateError(message)


def _plain(value: Any) -> Any:
    """What ``json`` cannot serialise on its own: Jinja's lazy sequences and undefined values."""
    if isinstance(value, Undefined):
        return None
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _tojson(
    value: Any,
    indent: int | None = None,
    ensure_ascii: bool = False,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
    **_: Any,
) -> str:
    return json.dumps(
        value,
        indent=indent,
        ensure_ascii=ensure_ascii,
        separators=(separators[0], separators[1]) if separators else None,
        sort_keys=sort_keys,
        default=_plain,
    )


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


class _Generation(Extension):
    """``{% generation %}...{% endgeneration %}`` (Hugging Face marks assistant text for training
    masks with it): rendered as its body."""

    tags = {"generation"}

    def parse(self, parser: Parser) -> list[nodes.Node]:
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _finalize(value: Any) -> Any:
    return (
        "" if value is None else value
    )  # ``{{ message.content }}`` of a null content prints nothing, not "None"


_env = SandboxedEnvironment(
    trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols, _Generation], finalize=_finalize
)
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
    if message.reasoning:  # under each name templates read it by
        out["reasoning_content"] = out["reasoning"] = out["thinking"] = message.reasoning
    return out


def tool_dict(tool: Tool) -> dict[str, Any]:
    # A copy: templates may change what they are given, and the request's schema is used again.
    parameters = copy.deepcopy(tool.parameters) if tool.parameters else {"type": "object"}
    function = {"name": tool.name, "description": tool.description or "", "parameters": parameters}
    return {"type": "function", "function": function}


class ChatTemplate:
    """A compiled chat template with the special tokens it refers to, and the fixes it needs."""

    def __init__(self, source: str, *, bos_token: str, eos_token: str, name: str = "gguf") -> None:
        self.name = name
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        try:
            self._template = _env.from_string(source)
            self._free = meta.find_undeclared_variables(_env.parse(source))
        except TemplateError as exc:
            raise ConfigError(f"chat template {name!r} does not compile: {exc}") from exc
        self.stop_strings: list[str] = list(_TURN_END.get(name, []))
        self.fixes = template_fixes.probe(self._probe_render, source)

    def _context(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> dict[str, Any]:
        context: dict[str, Any] = {
            "messages": messages,
            "add_generation_prompt": True,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
        }
        if tools:
            context["tools"] = tools
        # Variables a few templates read without setting (Firefunction's): llama.cpp passes them too.
        if "functions" in self._free:
            context["functions"] = json.dumps([t["function"] for t in tools or []], indent=2)
        if "datetime" in self._free:
            context["datetime"] = datetime.datetime.now().strftime("%b %d %Y %H:%M:%S")
        return context

    def _probe_render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
        return self._template.render(self._context(copy.deepcopy(messages), copy.deepcopy(tools)))

    def render(
        self,
        messages: list[Message],
        *,
        tools: list[Tool] | None = None,
        add_generation_prompt: bool = True,
        **extra: Any,
    ) -> str:
        dicts = template_fixes.apply(self.fixes, [message_dict(m) for m in messages])
        tool_dicts = template_fixes.apply_tools(self.fixes, [tool_dict(t) for t in tools]) if tools else None
        context = self._context(dicts, tool_dicts)
        context.update(add_generation_prompt=add_generation_prompt, **extra)
        try:
            return self._template.render(context)
        except TemplateError as exc:
            raise InvalidRequest(f"the model's chat template refused these messages: {exc}") from exc
        except RecursionError as exc:  # a template's recursive macro on a deeply nested message
            raise InvalidRequest("the model's chat template recursed too deeply on these messages") from exc
        except Exception as exc:  # the template's own code failed on these messages (its author's bug)
            raise InvalidRequest(
                f"the model's chat template failed on these messages: {type(exc).__name__}: {exc}"
            ) from exc


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
    name = default_builtin(architecture)
    return ChatTemplate(builtin_source(name), bos_token=bos_token, eos_token=eos_token, name=name)
