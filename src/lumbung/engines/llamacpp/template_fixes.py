"""What a chat template needs of the messages before it renders them, found once by probing it.

Templates are written against their authors' own tooling, and many break on conversations that
clients send every day: an assistant turn with ``tool_calls`` and ``content: null`` (OpenAI's shape,
and every Anthropic ``tool_use``-only turn) raises in Qwen 3's template; DeepSeek R1's concatenates
``arguments`` as text; Mistral's demands 9-character call ids; Llama 3.1's allows one call per turn;
Gemma 2's refuses a system message. Each ``Fix`` rewrites the messages (Hugging Face dicts) into the
shape the template accepts without changing what the conversation says. ``probe`` renders a
conversation holding every such case and keeps the smallest set of fixes under which the template
renders it whole (llama.cpp's minja probes its templates' capabilities the same way).
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import json
from collections.abc import Callable
from typing import Any

Messages = list[dict[str, Any]]
Render = Callable[[Messages, Messages], str]


class Fix(enum.Enum):
    NULL_CONTENT = "null content as empty text"
    STRING_ARGUMENTS = "arguments as JSON text"
    SHORT_IDS = "9-character call ids"
    ONE_CALL_PER_TURN = "one call per assistant turn"
    TOOL_RESULTS_AS_USER = "tool results as user turns"
    SYSTEM_IN_USER = "system prompt in the first user turn"
    FLAT_TOOLS = "tools described Cohere's way"


def _null_content(messages: Messages) -> Messages:
    return [{**m, "content": ""} if m.get("content") is None else m for m in messages]


def _string_arguments(messages: Messages) -> Messages:
    def text(call: dict[str, Any]) -> dict[str, Any]:
        args = call["function"]["arguments"]
        if isinstance(args, str):
            return call
        return {**call, "function": {**call["function"], "arguments": json.dumps(args, ensure_ascii=False)}}

    return [
        {**m, "tool_calls": [text(c) for c in m["tool_calls"]]} if m.get("tool_calls") else m
        for m in messages
    ]


def short_id(call_id: str) -> str:
    """A stable 9-character alphanumeric id for ``call_id`` (Mistral's templates accept no other)."""
    if len(call_id) == 9 and call_id.isalnum():
        return call_id
    return hashlib.sha256(call_id.encode()).hexdigest()[:9]


def _short_ids(messages: Messages) -> Messages:
    out = []
    for m in messages:
        if m.get("tool_calls"):
            m = {**m, "tool_calls": [{**c, "id": short_id(c.get("id") or "")} for c in m["tool_calls"]]}
        if m.get("tool_call_id"):
            m = {**m, "tool_call_id": short_id(m["tool_call_id"])}
        out.append(m)
    return out


def _one_call_per_turn(messages: Messages) -> Messages:
    """An assistant turn with several calls becomes one turn per call, each followed by its result."""
    out: Messages = []
    i = 0
    while i < len(messages):
        m = messages[i]
        i += 1
        calls = m.get("tool_calls") or []
        if m.get("role") != "assistant" or len(calls) < 2:
            out.append(m)
            continue
        results = []
        while i < len(messages) and messages[i].get("role") == "tool":
            results.append(messages[i])
            i += 1
        for n, call in enumerate(calls):
            turn = (
                {**m, "tool_calls": [call]}
                if n == 0
                else {"role": "assistant", "content": None, "tool_calls": [call]}
            )
            out.append(turn)
            own = [r for r in results if r.get("tool_call_id") == call.get("id")]
            if not own and n < len(results) and not results[n].get("tool_call_id"):
                own = [results[n]]  # results without ids answer the calls in order
            out.extend(own)
            results = [r for r in results if all(r is not o for o in own)]
        out.extend(results)
    return out


def _tool_results_as_user(messages: Messages) -> Messages:
    """For templates without a tool role: each run of results becomes one user turn."""
    out: Messages = []
    for m in messages:
        if m.get("role") != "tool":
            out.append(m)
            continue
        result = json.dumps({"tool_response": m.get("content") or ""}, ensure_ascii=False)
        if out and out[-1].get("role") == "user" and out[-1].get("tool_results"):
            out[-1] = {**out[-1], "content": f"{out[-1]['content']}\n{result}"}
        else:
            out.append({"role": "user", "content": result, "tool_results": True})
    return out


def _system_in_user(messages: Messages) -> Messages:
    system = "\n\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    rest = [m for m in messages if m.get("role") != "system"]
    if not system:
        return rest
    for n, m in enumerate(rest):
        if m.get("role") == "user":
            rest[n] = {**m, "content": f"{system}\n\n{m.get('content') or ''}"}
            return rest
    return [{"role": "user", "content": system}, *rest]


_PY_TYPES = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "array": "list",
    "object": "dict",
}


def _flat_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """Also the shape Cohere's templates read: name, description and ``parameter_definitions``."""
    function = tool.get("function", {})
    schema = function.get("parameters") or {}
    required = set(schema.get("required") or [])
    definitions = {
        key: {
            "description": str(sub.get("description", "")),
            "type": _PY_TYPES.get(str(sub.get("type")), "str"),
            "required": key in required,
        }
        for key, sub in (schema.get("properties") or {}).items()
        if isinstance(sub, dict)
    }
    flat = {"name": function.get("name", ""), "description": function.get("description", "")}
    return {**tool, **flat, "parameter_definitions": definitions}


# In the order they apply: ids are shortened before turns are split, turns split before empty
# content is filled in (the new turns have none either).
_APPLY = (
    (Fix.SHORT_IDS, _short_ids),
    (Fix.ONE_CALL_PER_TURN, _one_call_per_turn),
    (Fix.TOOL_RESULTS_AS_USER, _tool_results_as_user),
    (Fix.SYSTEM_IN_USER, _system_in_user),
    (Fix.NULL_CONTENT, _null_content),
    (Fix.STRING_ARGUMENTS, _string_arguments),
)


def apply(fixes: frozenset[Fix], messages: Messages) -> Messages:
    for fix, rewrite in _APPLY:
        if fix in fixes:
            messages = rewrite(messages)
    return messages


def apply_tools(fixes: frozenset[Fix], tools: Messages) -> Messages:
    return [_flat_tool(t) for t in tools] if Fix.FLAT_TOOLS in fixes else tools


_SYSTEM, _USER, _RESULT = "PROBE-SYSTEM-7f3a", "PROBE-USER-7f3a", "PROBE-RESULT-7f3a"
_ARG_KEY, _ARG_VALUE = "probe_key_7f3a", "probe_value_7f3a"
PROBE_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"Probe tool {name}",
            "parameters": {"type": "object", "properties": {_ARG_KEY: {"type": "string"}}},
        },
    }
    for name in ("probe_tool_a", "probe_tool_b")
]


def _call(n: int, name: str) -> dict[str, Any]:
    arguments = {_ARG_KEY: f"{_ARG_VALUE}_{n}"}
    return {"id": f"call_probe_{n}", "type": "function", "function": {"name": name, "arguments": arguments}}


PROBE_MESSAGES: Messages = [
    {"role": "system", "content": _SYSTEM},
    {"role": "user", "content": _USER},
    {
        "role": "assistant",
        "content": None,
        "reasoning_content": "Both tools.",
        "tool_calls": [_call(1, "probe_tool_a"), _call(2, "probe_tool_b")],
    },
    {"role": "tool", "tool_call_id": "call_probe_1", "content": _RESULT},
    {"role": "tool", "tool_call_id": "call_probe_2", "content": _RESULT},
    {"role": "assistant", "content": "Done."},
    {"role": "user", "content": "Thanks."},
]


def _renders_whole(text: str, source: str) -> bool:
    if _SYSTEM not in text or _USER not in text or _RESULT not in text:
        return False
    # Arguments must come out as JSON (a template printing a mapping gives Python's repr instead).
    # Both parallel calls must be there (gpt-oss's template prints only an assistant turn's first).
    calls = f"{_ARG_VALUE}_1" in text and f"{_ARG_VALUE}_2" in text
    return "tool_calls" not in source or (calls and f"'{_ARG_KEY}'" not in text)


def _no_none(render: Render, source: str, fixes: frozenset[Fix], text: str) -> frozenset[Fix]:
    """Empty text for null content too, where the template prints null as "None" (a filter such as
    Command R+'s ``content|trim`` makes a string of it before Jinja could print it as nothing)."""
    if Fix.NULL_CONTENT in fixes or "None" not in text:
        return fixes
    more = fixes | {Fix.NULL_CONTENT}
    try:
        filled = render(apply(more, PROBE_MESSAGES), apply_tools(more, PROBE_TOOLS))
    except Exception:  # a template may raise anything; this probe only asks whether it does
        return fixes
    return more if _renders_whole(filled, source) and filled.count("None") < text.count("None") else fixes


def probe(render: Render, source: str) -> frozenset[Fix]:
    """The fewest fixes under which ``render`` renders the probe conversation whole; failing that,
    the fewest under which it renders at all (none if it never does: requests then get its error)."""
    rendering: frozenset[Fix] | None = None
    for size in range(len(Fix) + 1):
        for combo in itertools.combinations(Fix, size):
            fixes = frozenset(combo)
            try:
                text = render(apply(fixes, PROBE_MESSAGES), apply_tools(fixes, PROBE_TOOLS))
            except Exception:  # a template may raise anything; this probe only asks whether it does
                continue
            if _renders_whole(text, source):
                return _no_none(render, source, fixes, text)
            if rendering is None:
                rendering = fixes
    return rendering or frozenset()
