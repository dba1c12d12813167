"""Tools the client runs that are not functions: ``custom`` (freeform text in, e.g. Codex's
``apply_patch``), ``local_shell`` and ``apply_patch``.

The model sees each as a function tool whose arguments carry what the tool takes (a custom tool: one
string ``input``; local_shell: the command; apply_patch: the file operation), and its call is reported
in the tool's own output item (``custom_tool_call``, ``local_shell_call``, ``apply_patch_call``), as
OpenAI reports it. When the client sends such an item back in ``input``, with its output, it becomes
the same function call and tool result again. A custom tool's ``grammar`` format is refused: lumbung
cannot hold a model's free text to a Lark or regex grammar.
"""

from __future__ import annotations

import json
from typing import Any

from lumbung.errors import InvalidRequest, UnsupportedParameter
from lumbung.types import Tool

KINDS = ("custom", "local_shell", "apply_patch")
# The item a call is reported in, and its id prefix.
CALL_ITEMS = {
    "custom": ("custom_tool_call", "ctc"),
    "local_shell": ("local_shell_call", "lsh"),
    "apply_patch": ("apply_patch_call", "apc"),
}
OUTPUT_ITEMS = {"custom_tool_call_output", "local_shell_call_output", "apply_patch_call_output"}

_CUSTOM = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The tool's input, as free text."}},
    "required": ["input"],
}
_LOCAL_SHELL = {
    "type": "object",
    "properties": {
        "command": {"type": "array", "items": {"type": "string"}, "description": "argv of the command"},
        "working_directory": {"type": "string"},
        "timeout_ms": {"type": "integer"},
    },
    "required": ["command"],
}
_APPLY_PATCH = {
    "type": "object",
    "properties": {
        "operation": {
            "type": "object",
            "properties": {
                "type": {"enum": ["create_file", "update_file", "delete_file"]},
                "path": {"type": "string"},
                "diff": {"type": "string", "description": "a V4A diff (create_file, update_file)"},
            },
            "required": ["type", "path"],
        }
    },
    "required": ["operation"],
}


def core_tool(kind: str, name: str | None, description: str | None, fmt: Any, where: str) -> Tool:
    """The function tool the model is offered for a client tool of ``kind``."""
    if kind == "custom":
        if not name:
            raise InvalidRequest(f"Missing required parameter: '{where}.name'.", param=f"{where}.name")
        if isinstance(fmt, dict) and fmt.get("type", "text") != "text":
            raise UnsupportedParameter(
                f"Unsupported parameter: '{where}.format' of type '{fmt.get('type')}': a custom tool's "
                "input can be free text here (format 'text'); a grammar cannot be enforced.",
                param=f"{where}.format",
            )
        return Tool(name, description or "", _CUSTOM)
    if kind == "local_shell":
        return Tool("local_shell", description or "Run a command on the user's machine.", _LOCAL_SHELL)
    return Tool("apply_patch", description or "Create, update or delete a file with a diff.", _APPLY_PATCH)


def _arguments(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments) if arguments else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def call_item(
    kind: str, name: str, item_id: str, call_id: str, arguments: str, status: str
) -> dict[str, Any]:
    """The output item of a call of a client tool, from the function call the model made."""
    args = _arguments(arguments)
    item_type, _ = CALL_ITEMS[kind]
    item: dict[str, Any] = {"type": item_type, "id": item_id, "call_id": call_id, "status": status}
    if kind == "custom":
        value = args.get("input")
        item.update(name=name, input=value if isinstance(value, str) else arguments)
    elif kind == "local_shell":
        command = args.get("command")
        action: dict[str, Any] = {
            "type": "exec",
            "command": [str(c) for c in command] if isinstance(command, list) else [],
            "env": {},
        }
        for key in ("working_directory", "timeout_ms"):
            if key in args:
                action[key] = args[key]
        item["action"] = action
    else:
        operation = args.get("operation")
        item["operation"] = operation if isinstance(operation, dict) else {}
    return item


def arguments_of(kind: str, fields: dict[str, Any]) -> str:
    """A call the client sends back (an ``input`` item) as the function call's arguments."""
    if kind == "custom":
        return json.dumps({"input": fields.get("input") or ""})
    if kind == "local_shell":
        action = fields.get("action") or {}
        keep = ("command", "working_directory", "timeout_ms")
        return json.dumps({k: action[k] for k in keep if k in action})
    return json.dumps({"operation": fields.get("operation") or {}})


def kind_of_item(item_type: str) -> str | None:
    """The client tool kind of an input item's type (a call or its output), None for others."""
    for kind, (call, _) in CALL_ITEMS.items():
        if item_type in (call, f"{call}_output"):
            return kind
    return None
