"""OpenAI Responses (``/v1/responses``) <-> core types, in pure functions (no HTTP, no database).

Input items become core messages; output is a list of items (reasoning, message, function calls).
With ``previous_response_id`` the stored conversation is prepended (the route looks it up); the
previous ``instructions`` are not carried over, as OpenAI specifies.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from lumbung.errors import ApiError, InvalidRequest, UnsupportedParameter
from lumbung.surfaces import logprobs as lp
from lumbung.surfaces import openai_responses_client_tools as client_tools
from lumbung.surfaces.openai import validation_error
from lumbung.surfaces.openai_responses_tools import ToolMap, tool_choice, tool_map, tools_body
from lumbung.surfaces.openai_responses_wire import ContentPartIn, CreateResponseIn, ItemIn
from lumbung.types import (
    ChatRequest,
    Completion,
    Message,
    ResponseFormat,
    SamplingParams,
    ToolCall,
    Usage,
)

LOGPROBS_INCLUDE = "message.output_text.logprobs"


def item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _refuse(param: str, why: str) -> UnsupportedParameter:
    return UnsupportedParameter(f"Unsupported parameter: '{param}' {why}", param=param)


@dataclass(slots=True)
class ResponsesCall:
    id: str
    created_at: int
    wire: CreateResponseIn
    messages: list[Message]  # this request's input, instructions excluded
    input_items: list[dict[str, Any]]
    request: ChatRequest  # without the previous conversation until ``with_history``
    tools: ToolMap = field(default_factory=ToolMap)
    store: bool = True
    stream: bool = False
    logprobs: bool = False
    extra_fields: list[str] = field(default_factory=list)

    def with_history(self, history: list[Message]) -> ChatRequest:
        head = [Message(role="system", content=self.wire.instructions)] if self.wire.instructions else []
        self.request.messages = head + history + self.messages
        return self.request


def _text(parts: str | list[ContentPartIn] | None, where: str) -> str:
    if parts is None or isinstance(parts, str):
        return parts or ""
    texts = []
    for j, part in enumerate(parts):
        if part.type in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            texts.append(part.text or "")
        elif part.type == "refusal":
            texts.append(part.refusal or "")
        else:
            raise _refuse(
                f"{where}[{j}].type", f"'{part.type}' is not supported: this model reads text only."
            )
    return "\n".join(texts)


def _item_dict(item: ItemIn) -> dict[str, Any]:
    return item.model_dump(exclude_none=True, by_alias=True)


def _messages(wire: CreateResponseIn, tools: ToolMap) -> tuple[list[Message], list[dict[str, Any]]]:
    raw = wire.input
    if raw is None:
        raise InvalidRequest(
            "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
        )
    if isinstance(raw, str):
        only = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}
        return [Message(role="user", content=raw)], [{"id": item_id("msg"), **only}]
    out: list[Message] = []
    for i, item in enumerate(raw):
        where = f"input[{i}]"
        kind = item.type or ("message" if item.role else None)
        if kind == "message":
            role = {"developer": "system"}.get(item.role or "", item.role)
            if role not in ("system", "user", "assistant"):
                raise InvalidRequest(
                    f"Invalid value for '{where}.role': {item.role!r}.", param=f"{where}.role"
                )
            text = _text(item.content, f"{where}.content")
            prev = out[-1] if out else None
            if role == "assistant" and prev is not None and prev.role == "assistant" and prev.content is None:
                prev.content = text  # text that followed a function call of the same turn
            else:
                out.append(Message(role=role, content=text))  # type: ignore[arg-type]
        elif kind == "function_call":
            if not item.call_id or not item.name:
                raise InvalidRequest(
                    f"Missing required parameter: '{where}.call_id' or '{where}.name'.", param=where
                )
            call = ToolCall(item.call_id, tools.core_name(item.namespace, item.name), item.arguments or "{}")
            prev = out[-1] if out else None
            if prev is not None and prev.role == "assistant":
                prev.tool_calls.append(call)  # one assistant turn holds its text and its calls
            else:
                out.append(Message(role="assistant", content=None, tool_calls=[call]))
        elif kind == "function_call_output":
            if not item.call_id:
                raise InvalidRequest(
                    f"Missing required parameter: '{where}.call_id'.", param=f"{where}.call_id"
                )
            out.append(
                Message(role="tool", content=_text(item.output, f"{where}.output"), tool_call_id=item.call_id)
            )
        elif kind is not None and kind in client_tools.OUTPUT_ITEMS:
            call_id = item.call_id or item.id  # local_shell_call_output names its call by ``id``
            if not call_id:
                raise InvalidRequest(
                    f"Missing required parameter: '{where}.call_id'.", param=f"{where}.call_id"
                )
            text = _text(item.output, f"{where}.output")
            status = (item.model_extra or {}).get("status")
            if not text and isinstance(status, str):
                text = status  # apply_patch_call_output: its status says how the patch went
            out.append(Message(role="tool", content=text, tool_call_id=call_id))
        elif kind is not None and client_tools.kind_of_item(kind) is not None:
            tool_kind = client_tools.kind_of_item(kind)
            assert tool_kind is not None
            call_id = item.call_id or item.id
            name = item.name if tool_kind == "custom" else tool_kind
            if not call_id or not name:
                raise InvalidRequest(
                    f"Missing required parameter: '{where}.call_id' or '{where}.name'.", param=where
                )
            fields = {"input": item.input, "action": item.action, "operation": item.operation}
            call = ToolCall(call_id, name, client_tools.arguments_of(tool_kind, fields))
            prev = out[-1] if out else None
            if prev is not None and prev.role == "assistant":
                prev.tool_calls.append(call)
            else:
                out.append(Message(role="assistant", content=None, tool_calls=[call]))
        elif kind == "reasoning":
            text = _text(item.content, f"{where}.content") or _text(item.summary, f"{where}.summary")
            out.append(Message(role="assistant", content=None, reasoning=text or None))
        else:
            raise _refuse(
                f"{where}.type",
                f"'{kind}' is not supported: send messages, reasoning, and calls of the client's "
                "tools (function, custom, local_shell, apply_patch) and their outputs.",
            )
    items = [
        {
            "id": item.id or item_id("msg" if (item.type or "message") == "message" else "item"),
            **_item_dict(item),
        }
        for item in raw
    ]
    return out, items


def _check_refusals(wire: CreateResponseIn) -> None:
    for name in ("context_management", "moderation"):
        if (wire.model_extra or {}).get(name) is not None:
            raise _refuse(name, "is not supported.")
    if wire.background:
        raise _refuse("background", "is not supported: responses run in the foreground.")
    if wire.conversation is not None:
        raise _refuse("conversation", "is not supported: use 'previous_response_id'.")
    if wire.prompt is not None:
        raise _refuse("prompt", "templates are not supported: send 'input' and 'instructions'.")
    if wire.truncation == "auto":
        raise _refuse("truncation", "'auto' is not supported: a prompt over the context is refused.")
    if wire.reasoning is not None and wire.reasoning.effort not in (None, "none"):
        raise _refuse("reasoning", "effort is not supported by this model.")
    if wire.service_tier not in (None, "auto", "default"):
        raise _refuse("service_tier", "may only be 'auto' or 'default'.")
    if wire.text is not None and wire.text.verbosity not in (None, "medium"):
        raise _refuse("text", "verbosity is not supported.")


def _response_format(wire: CreateResponseIn) -> ResponseFormat:
    fmt = wire.text.format if wire.text else None
    if fmt is None or fmt.type == "text":
        return ResponseFormat()
    if fmt.type == "json_object":
        return ResponseFormat(type="json_object")
    if fmt.schema_ is None:
        raise InvalidRequest("Missing required parameter: 'text.format.schema'.", param="text.format.schema")
    return ResponseFormat(type="json_schema", schema=fmt.schema_, name=fmt.name, strict=bool(fmt.strict))


def parse_create(body: bytes) -> ResponsesCall:
    try:
        wire = CreateResponseIn.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(exc) from exc
    _check_refusals(wire)
    tools = tool_map(wire)
    messages, items = _messages(wire, tools)
    logprobs = LOGPROBS_INCLUDE in (wire.include or []) or wire.top_logprobs is not None
    response_id = item_id("resp")
    request = ChatRequest(
        model=wire.model,
        messages=[],
        sampling=SamplingParams(
            temperature=1.0 if wire.temperature is None else wire.temperature,
            top_p=1.0 if wire.top_p is None else wire.top_p,
            max_tokens=wire.max_output_tokens,
            logprobs=(wire.top_logprobs or 0) if logprobs else None,
        ),
        response_format=_response_format(wire),
        tools=tools.tools,
        tool_choice=tool_choice(wire, tools),
        parallel_tool_calls=wire.parallel_tool_calls is not False,
        user=wire.user,
        metadata=dict(wire.metadata or {}),
        id=response_id,
    )
    return ResponsesCall(
        id=response_id,
        created_at=int(time.time()),
        wire=wire,
        messages=messages,
        input_items=items,
        request=request,
        tools=tools,
        store=wire.store is not False,
        stream=bool(wire.stream),
        logprobs=logprobs,
        extra_fields=sorted(wire.model_extra or {}),
    )


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def _text_body(call: ResponsesCall) -> dict[str, Any]:
    fmt = call.wire.text.format if call.wire.text else None
    return {
        "format": fmt.model_dump(by_alias=True, exclude_none=True) if fmt else {"type": "text"},
        "verbosity": "medium",
    }


def response_body(
    call: ResponsesCall,
    model: str,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None = None,
    error: ApiError | None = None,
    incomplete: str | None = None,
) -> dict[str, Any]:
    wire = call.wire
    tool_choice: Any = call.request.tool_choice
    if isinstance(tool_choice, dict):
        kind = call.tools.kind(tool_choice["name"])
        if kind == "custom":
            tool_choice = {"type": "custom", "name": tool_choice["name"]}
        elif kind != "function":
            tool_choice = {"type": kind}
        else:
            tool_choice = {"type": "function", **call.tools.call_fields(tool_choice["name"])}
    body: dict[str, Any] = {
        "id": call.id,
        "object": "response",
        "created_at": call.created_at,
        "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": None if error is None else {"code": _error_code(error), "message": error.message},
        "incomplete_details": None if incomplete is None else {"reason": incomplete},
        "instructions": wire.instructions,
        "max_output_tokens": wire.max_output_tokens,
        "max_tool_calls": wire.max_tool_calls,
        "model": model,
        "output": output,
        "parallel_tool_calls": call.request.parallel_tool_calls,
        "previous_response_id": wire.previous_response_id,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": call.store,
        "temperature": call.request.sampling.temperature,
        "text": _text_body(call),
        "tool_choice": tool_choice,
        "tools": tools_body(wire),
        "top_logprobs": wire.top_logprobs,
        "top_p": call.request.sampling.top_p,
        "truncation": "disabled",
        "usage": usage_body(usage) if usage is not None else None,
        "user": wire.user,
        "metadata": dict(wire.metadata or {}),
    }
    for key in ("usage", "user"):  # the schema has no null for these: left out when unknown
        if body[key] is None:
            del body[key]
    return body


def _error_code(error: ApiError) -> str:
    return "rate_limit_exceeded" if error.status == 429 else "server_error"


def status_of(reason: str) -> tuple[str, str | None]:
    if reason == "length":
        return "incomplete", "max_output_tokens"
    if reason == "content_filter":
        return "incomplete", "content_filter"
    return "completed", None


def output_items(done: Completion, logprobs: bool, tools: ToolMap) -> list[dict[str, Any]]:
    """The answer's items; cut by ``max_output_tokens``, the last one is ``incomplete`` (as the
    stream closes it: the items before it were done)."""
    items: list[dict[str, Any]] = []
    status = "completed"
    if done.reasoning:
        items.append(
            {
                "type": "reasoning",
                "id": item_id("rs"),
                "summary": [],
                "content": [{"type": "reasoning_text", "text": done.reasoning}],
                "status": status,
            }
        )
    if done.text or not done.tool_calls:
        part = {
            "type": "output_text",
            "text": done.text,
            "annotations": [],
            "logprobs": lp.responses(done.logprobs) if logprobs else [],
        }
        items.append(
            {
                "type": "message",
                "id": item_id("msg"),
                "status": status,
                "role": "assistant",
                "content": [part],
            }
        )
    for c in done.tool_calls:
        items.append(call_item(tools, c.name, c.id, c.arguments, "completed"))
    if done.finish_reason == "length":
        items[-1]["status"] = "incomplete"
    return items


def call_item(tools: ToolMap, core: str, call_id: str, arguments: str, status: str) -> dict[str, Any]:
    """The output item of a call: a ``function_call``, or the item of a client tool's kind."""
    kind = tools.kind(core)
    if kind != "function":
        prefix = client_tools.CALL_ITEMS[kind][1]
        return client_tools.call_item(kind, core, item_id(prefix), call_id, arguments, status)
    return {
        "type": "function_call",
        "id": item_id("fc"),
        "call_id": call_id,
        **tools.call_fields(core),
        "arguments": arguments,
        "status": status,
    }


def conversation_after(call: ResponsesCall, history: list[Message], done: Completion) -> list[Message]:
    """What a later ``previous_response_id`` continues: history, this input, and this answer."""
    answer = Message(
        role="assistant",
        content=done.text if done.text or not done.tool_calls else None,
        tool_calls=list(done.tool_calls),
        reasoning=done.reasoning or None,
    )
    return [*history, *call.messages, answer]


def deleted_body(response_id: str) -> dict[str, Any]:
    return {"id": response_id, "object": "response.deleted", "deleted": True}


def input_items_body(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": False,
    }
