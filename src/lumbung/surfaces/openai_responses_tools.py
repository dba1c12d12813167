"""The tools of a Responses request: function tools, namespaces of them, and hosted tools.

A ``namespace`` tool groups function tools on the client's side (Codex CLI sends its sub-agent tools
as one); the model sees them as plain function tools, and a call is reported with its namespace and
its own name, as OpenAI reports it. Hosted tools (web search, file search, code interpreter, ...) run
on OpenAI's servers, and a model may use them or not: lumbung has none, so they are left out, unless
``tool_choice`` requires one, which is refused. Tools the client runs but that are not functions
(``custom``, ``local_shell``, ``apply_patch``) are offered to the model as functions and reported in
their own items (openai_responses_client_tools.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lumbung.errors import ApiError, InvalidRequest, UnsupportedParameter
from lumbung.surfaces import openai_responses_client_tools as client_tools
from lumbung.surfaces.openai_responses_wire import CreateResponseIn, ToolIn
from lumbung.types import Tool

# Tools OpenAI runs itself; a model answers without them when they are not there.
HOSTED = ("web_search", "file_search", "code_interpreter", "image_generation", "mcp", "tool_search")


def is_hosted(kind: str) -> bool:
    return any(kind == h or kind.startswith(h + "_") for h in HOSTED)


@dataclass(slots=True)
class ToolMap:
    """The core tools, and for each the client's (namespace, name) and where it sat in ``tools``."""

    tools: list[Tool] = field(default_factory=list)
    wire: dict[str, tuple[str | None, str]] = field(default_factory=dict)  # core name -> client's
    paths: list[str] = field(default_factory=list)  # core tool i -> "tools[4].tools[1]"
    kinds: dict[str, str] = field(default_factory=dict)  # core name -> a client tool's kind (custom, ...)

    def kind(self, core: str) -> str:
        """``function``, or the kind of client tool the core tool stands for."""
        return self.kinds.get(core, "function")

    def core_name(self, namespace: str | None, name: str) -> str:
        """The core name of a call the client sends back (a ``function_call`` input item)."""
        for core, key in self.wire.items():
            if key == (namespace, name):
                return core
        return name

    def call_fields(self, core: str) -> dict[str, str]:
        """``name`` (and ``namespace``) of a call of the core tool ``core``, as the client knows it."""
        namespace, name = self.wire.get(core, (None, core))
        return {"name": name} if namespace is None else {"namespace": namespace, "name": name}


def _refuse(param: str, why: str) -> UnsupportedParameter:
    return UnsupportedParameter(f"Unsupported parameter: '{param}' {why}", param=param)


def _function(tool: ToolIn, where: str) -> Tool:
    if not tool.name:
        raise InvalidRequest(f"Missing required parameter: '{where}.name'.", param=f"{where}.name")
    return Tool(tool.name, tool.description, tool.parameters or {}, bool(tool.strict))


def tool_map(wire: CreateResponseIn) -> ToolMap:
    out = ToolMap()
    found: list[tuple[str | None, Tool, str]] = []
    for i, tool in enumerate(wire.tools or []):
        where = f"tools[{i}]"
        if tool.type == "function":
            found.append((None, _function(tool, where), where))
        elif tool.type in client_tools.KINDS:
            mapped = client_tools.core_tool(tool.type, tool.name, tool.description, tool.format, where)
            out.kinds[mapped.name] = tool.type
            found.append((None, mapped, where))
        elif tool.type == "namespace":
            if not tool.name:
                raise InvalidRequest(f"Missing required parameter: '{where}.name'.", param=f"{where}.name")
            for j, inner in enumerate(tool.tools or []):
                if inner.type != "function":
                    raise _refuse(
                        f"{where}.tools[{j}].type",
                        f"'{inner.type}' is not supported: a namespace may hold function tools here.",
                    )
                found.append((tool.name, _function(inner, f"{where}.tools[{j}]"), f"{where}.tools[{j}]"))
        elif not is_hosted(tool.type):
            raise _refuse(
                f"{where}.type",
                f"'{tool.type}' is not supported: function, namespace, custom, local_shell and "
                "apply_patch tools are (hosted tools are left out: lumbung runs none).",
            )
    bare = [t.name for _, t, _ in found]
    for namespace, fn, path in found:
        core = fn.name
        if namespace is not None and bare.count(fn.name) > 1:  # one name in two places
            core = f"{namespace}__{fn.name}"
        if core in out.wire:
            raise InvalidRequest(f"Duplicate function name '{fn.name}' in 'tools'.", param=f"{path}.name")
        out.wire[core] = (namespace, fn.name)
        out.tools.append(Tool(core, fn.description, fn.parameters, fn.strict))
        out.paths.append(path)
    return out


def tool_choice(wire: CreateResponseIn, tools: ToolMap) -> str | dict[str, Any]:
    choice = wire.tool_choice
    if choice is None:
        return "auto"
    if isinstance(choice, str):
        if choice == "required" and not tools.tools:
            raise _refuse("tool_choice", "'required' needs a function tool: lumbung runs no hosted tools.")
        return choice
    if choice.type in ("local_shell", "apply_patch") and choice.type in tools.kinds:
        return {"type": "function", "name": choice.type}
    if choice.type == "custom":
        return {"type": "function", "name": choice.name or ""}
    if choice.type != "function":
        why = "lumbung runs no hosted tools" if is_hosted(choice.type) else "only the client's tools can be"
        raise _refuse("tool_choice", f"type '{choice.type}' cannot be required: {why}.")
    namespace = (choice.model_extra or {}).get("namespace")
    return {"type": "function", "name": tools.core_name(namespace, choice.name or "")}


def tools_body(wire: CreateResponseIn) -> list[dict[str, Any]]:
    """The tools as the response echoes them: as the client sent them."""
    out = []
    for tool in wire.tools or []:
        body = tool.model_dump(exclude_none=True)
        if tool.type == "function":
            body = {
                "type": "function",
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters or {},
                "strict": bool(tool.strict),
            }
        out.append(body)
    return out


_CORE_TOOL = re.compile(r"\btools\[(\d+)\]\.function\.parameters\b")
_CORE_FORMAT = (
    (re.compile(r"\bresponse_format\.json_schema\.schema\b"), "text.format.schema"),
    (re.compile(r"\bresponse_format\b"), "text.format"),
    (re.compile(r"\bmax_tokens\b"), "max_output_tokens"),
)


def in_wire_terms(exc: ApiError, tools: ToolMap) -> ApiError:
    """``exc`` naming the field the client sent: lower layers (the engine's grammar compiler) name
    the core request's, in Chat Completions' words and with namespaces flattened."""

    def rename(text: str) -> str:
        def tool_path(found: re.Match[str]) -> str:
            i = int(found.group(1))
            return f"{tools.paths[i]}.parameters" if i < len(tools.paths) else found.group(0)

        text = _CORE_TOOL.sub(tool_path, text)
        for pattern, replacement in _CORE_FORMAT:
            text = pattern.sub(replacement, text)
        return text

    exc.message = rename(exc.message)
    if exc.param is not None:
        exc.param = rename(exc.param)
    return exc
