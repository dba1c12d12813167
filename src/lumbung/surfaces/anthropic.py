"""Anthropic Messages <-> core types, in pure functions (no HTTP here).

Fail closed: what lumbung cannot honour (images, server tools, MCP servers, prefill) is refused with
a 400 in Anthropic's error envelope; ``docs/api-compatibility.md`` lists every parameter.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from lumbung.errors import ApiError, InvalidRequest, UnsupportedParameter
from lumbung.surfaces.anthropic_wire import Block, CountTokensIn, MessageIn, MessagesRequestIn, ToolIn
from lumbung.types import (
    ChatRequest,
    Chunk,
    Completion,
    FinishReason,
    Message,
    ResponseFormat,
    SamplingParams,
    Tool,
    ToolCall,
    Usage,
    new_id,
)

# Anthropic dates its API versions; newer SDKs send newer dates, and the wire format lumbung speaks
# has stayed compatible across them, so any date from the first version on is accepted.
_VERSION = re.compile(r"^20[2-9][0-9]-[01][0-9]-[0-3][0-9]$")
FIRST_VERSION = "2023-01-01"


def check_version(version: str | None) -> None:
    if version is None:
        raise InvalidRequest("anthropic-version: header is required")
    if not _VERSION.match(version) or version < FIRST_VERSION:
        raise InvalidRequest(f"anthropic-version: unknown version '{version}'")


# Anthropic names error types by status; lumbung's own types are mapped onto that set.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


# Lower layers (the engine's grammar compiler) name the parameters of the core request in OpenAI's
# words; an Anthropic client is told the field it sent.
_OPENAI_PATHS = (
    (re.compile(r"\btools\[(\d+)\]\.function\.parameters\b"), r"tools.\1.input_schema"),
    (re.compile(r"\bresponse_format\.json_schema\.schema\b"), "output_config.format.schema"),
    (re.compile(r"\bresponse_format\b"), "output_config.format"),
)


def anthropic_path(text: str) -> str:
    """``text`` with the core request's (OpenAI) field paths renamed to the Messages API's."""
    for pattern, replacement in _OPENAI_PATHS:
        text = pattern.sub(replacement, text)
    return text


def error_body(exc: ApiError) -> dict[str, Any]:
    message = anthropic_path(exc.message)
    return {"type": "error", "error": {"type": error_type(exc.status), "message": message}}


@dataclass(slots=True)
class MessagesOptions:
    stream: bool = False
    thinking: bool = False  # render the model's reasoning as thinking blocks
    stop_sequences: list[str] = field(default_factory=list)
    extra_fields: list[str] = field(default_factory=list)


def validation_error(exc: ValidationError) -> InvalidRequest:
    """The first problem of a pydantic error, worded as Anthropic words it (``field: problem``)."""
    err = exc.errors()[0]
    if err["type"] == "json_invalid":
        return InvalidRequest("There was an error parsing the body: invalid JSON.")
    # Anthropic writes paths with dots throughout (messages.0.content); union branch labels are dropped.
    param = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p == "str")))
    if not param:
        return InvalidRequest("The request body must be a JSON object.")
    if err["type"] == "missing":
        return InvalidRequest(f"{param}: Field required", param=param)
    return InvalidRequest(f"{param}: {err['msg']}", param=param)


def _refuse(param: str, why: str) -> UnsupportedParameter:
    return UnsupportedParameter(f"{param}: {why}", param=param)


def _block_text(block: Block, where: str) -> str:
    if block.type != "text" or block.text is None:
        raise _refuse(
            f"{where}.type", f"'{block.type}' content is not supported here: this model reads text only."
        )
    return block.text


def _tool_result_text(block: Block, where: str) -> str:
    content = block.content
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        text = "\n".join(_block_text(b, f"{where}.content[{k}]") for k, b in enumerate(content))
    return f"Error: {text}" if block.is_error else text


def _user_turn(msg: MessageIn, i: int) -> list[Message]:
    if isinstance(msg.content, str):
        return [Message(role="user", content=msg.content)]
    out: list[Message] = []
    texts: list[str] = []
    for j, block in enumerate(msg.content):
        where = f"messages.{i}.content.{j}"
        if block.type == "tool_result":
            if not block.tool_use_id:
                raise InvalidRequest(f"{where}.tool_use_id: Field required", param=f"{where}.tool_use_id")
            out.append(
                Message(role="tool", content=_tool_result_text(block, where), tool_call_id=block.tool_use_id)
            )
        else:
            texts.append(_block_text(block, where))
    if texts:
        out.append(Message(role="user", content="\n\n".join(texts)))
    return out


def _assistant_turn(msg: MessageIn, i: int) -> Message:
    if isinstance(msg.content, str):
        return Message(role="assistant", content=msg.content)
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    for j, block in enumerate(msg.content):
        where = f"messages.{i}.content.{j}"
        if block.type == "tool_use":
            if not block.id or not block.name:
                raise InvalidRequest(f"{where}: tool_use blocks need 'id' and 'name'", param=where)
            calls.append(ToolCall(block.id, block.name, json.dumps(block.input or {}, ensure_ascii=False)))
        elif block.type == "thinking":
            reasoning.append(block.thinking or "")
        elif block.type == "redacted_thinking":
            continue  # opaque to any model but the one that wrote it
        else:
            texts.append(_block_text(block, where))
    return Message(
        role="assistant",
        content="".join(texts) if texts or not calls else None,
        tool_calls=calls,
        reasoning="".join(reasoning) or None,
    )


def _system_text(content: str | list[Block], where: str) -> str:
    if isinstance(content, str):
        return content
    return "\n\n".join(_block_text(b, f"{where}.{k}") for k, b in enumerate(content))


def _messages(wire: CountTokensIn) -> list[Message]:
    out: list[Message] = []
    if wire.system is not None:
        system = _system_text(wire.system, "system")
        if system:
            out.append(Message(role="system", content=system))
    for i, msg in enumerate(wire.messages):
        if msg.role == "system":
            # A system message mid-conversation keeps its place (the core, like OpenAI, allows it).
            turn = [Message(role="system", content=_system_text(msg.content, f"messages.{i}.content"))]
        elif msg.role == "user":
            turn = _user_turn(msg, i)
        else:
            turn = [_assistant_turn(msg, i)]
        for m in turn:
            prev = out[-1] if out else None
            # Consecutive turns of one role are combined into one, as Anthropic does.
            if (
                prev is not None
                and prev.role == m.role
                and m.role in ("user", "assistant", "system")
                and not prev.tool_calls
                and not m.tool_calls
                and not m.reasoning
            ):
                prev.content = f"{prev.content or ''}\n\n{m.content or ''}"
            else:
                out.append(m)
    if wire.messages[-1].role == "assistant":
        raise _refuse(
            f"messages.{len(wire.messages) - 1}",
            "a final assistant message (prefill) is not supported: end with a user message.",
        )
    if not any(m.role != "system" for m in out):
        raise InvalidRequest("messages: at least one user message is required", param="messages")
    return out


def _tool(tool: ToolIn, i: int) -> Tool:
    if tool.type not in (None, "custom"):
        raise _refuse(
            f"tools.{i}.type", f"server tool '{tool.type}' is not supported: only custom tools are."
        )
    if tool.input_schema is None:
        raise InvalidRequest(f"tools.{i}.input_schema: Field required", param=f"tools.{i}.input_schema")
    return Tool(tool.name, tool.description, tool.input_schema, bool(tool.strict))


def _check_refusals(wire: CountTokensIn) -> None:
    if wire.mcp_servers:
        raise _refuse("mcp_servers", "MCP servers are not supported: run your tools on the client side.")
    if wire.container is not None:
        raise _refuse("container", "containers (code execution) are not supported.")
    if wire.thinking is not None and wire.thinking.type == "enabled":
        budget = wire.thinking.budget_tokens
        if budget is None or budget < 1024:
            raise InvalidRequest("thinking.enabled.budget_tokens: Input should be >= 1024", param="thinking")
        if isinstance(wire, MessagesRequestIn) and budget >= wire.max_tokens:
            raise InvalidRequest(
                "`max_tokens` must be greater than `thinking.budget_tokens`.", param="max_tokens"
            )
    if isinstance(wire, MessagesRequestIn):
        if wire.inference_geo is not None:
            raise _refuse("inference_geo", "is not supported: lumbung serves where it runs.")
        if wire.speed not in (None, "standard"):
            raise _refuse("speed", "only 'standard' is supported.")
        if wire.service_tier not in (None, "auto", "standard_only"):
            raise InvalidRequest(
                "service_tier: Input should be 'auto' or 'standard_only'", param="service_tier"
            )


def _chat_request(wire: CountTokensIn) -> ChatRequest:
    _check_refusals(wire)
    tools = [_tool(t, i) for i, t in enumerate(wire.tools or [])]
    tool_choice: str | dict[str, Any] = "auto"
    parallel = True
    if wire.tool_choice is not None:
        choice = wire.tool_choice
        parallel = not choice.disable_parallel_tool_use
        if choice.type == "tool":
            if not choice.name:
                raise InvalidRequest("tool_choice.tool.name: Field required", param="tool_choice.name")
            if choice.name not in {t.name for t in tools}:
                raise InvalidRequest(
                    f"tool_choice.name: no tool named '{choice.name}'", param="tool_choice.name"
                )
            tool_choice = {"type": "function", "name": choice.name}
        else:
            tool_choice = {"auto": "auto", "any": "required", "none": "none"}[choice.type]
    response_format = ResponseFormat()
    if wire.output_config is not None and wire.output_config.format is not None:
        response_format = ResponseFormat(
            type="json_schema", schema=wire.output_config.format.schema_, strict=True
        )
    return ChatRequest(
        model=wire.model,
        messages=_messages(wire),
        response_format=response_format,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        id=new_id("msg").replace("-", "_"),
    )


def _parse(model: type[CountTokensIn], body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(exc) from exc


def parse_messages_request(body: bytes) -> tuple[ChatRequest, MessagesOptions]:
    wire: MessagesRequestIn = _parse(MessagesRequestIn, body)
    request = _chat_request(wire)
    stops = list(wire.stop_sequences or [])
    request.sampling = SamplingParams(
        temperature=1.0 if wire.temperature is None else wire.temperature,
        top_p=1.0 if wire.top_p is None else wire.top_p,
        top_k=wire.top_k or 0,
        max_tokens=wire.max_tokens,
        stop=stops,
    )
    if wire.metadata is not None:
        request.user = wire.metadata.user_id
    options = MessagesOptions(
        stream=bool(wire.stream),
        thinking=wire.thinking is not None and wire.thinking.type != "disabled",
        stop_sequences=stops,
        extra_fields=sorted(wire.model_extra or {}),
    )
    return request, options


def parse_count_tokens(body: bytes) -> ChatRequest:
    wire: CountTokensIn = _parse(CountTokensIn, body)
    return _chat_request(wire)


def stop_reason(
    reason: FinishReason, stop_sequence: str | None, options: MessagesOptions
) -> tuple[str, str | None]:
    """Anthropic's stop_reason and stop_sequence for a core finish reason."""
    if reason == "length":
        return "max_tokens", None
    if reason == "tool_calls":
        return "tool_use", None
    if reason == "content_filter":
        return "refusal", None
    if stop_sequence is not None and stop_sequence in options.stop_sequences:
        return "stop_sequence", stop_sequence
    return "end_turn", None


def usage_body(usage: Usage) -> dict[str, Any]:
    # Anthropic counts cache reads apart from input_tokens; lumbung's prefix cache only reads.
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
    }


def _tool_use(call: ToolCall) -> dict[str, Any]:
    try:
        value = json.loads(call.arguments) if call.arguments else {}
    except ValueError:
        value = {}
    return {
        "type": "tool_use",
        "id": call.id,
        "name": call.name,
        "input": value if isinstance(value, dict) else {},
    }


def message_body(
    request: ChatRequest, model: str, completion: Completion, options: MessagesOptions
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if options.thinking and completion.reasoning:
        content.append({"type": "thinking", "thinking": completion.reasoning, "signature": ""})
    if completion.text or not completion.tool_calls:
        content.append({"type": "text", "text": completion.text})
    content.extend(_tool_use(c) for c in completion.tool_calls)
    reason, sequence = stop_reason(completion.finish_reason, completion.stop_sequence, options)
    return {
        "id": request.id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage_body(completion.usage),
    }


Event = tuple[str, dict[str, Any]]


class EventWriter:
    """Renders a core chunk stream as Anthropic's event sequence: message_start, ping, then each
    content block as start / deltas / stop, then message_delta (stop reason, usage) and message_stop."""

    def __init__(self, request: ChatRequest, model: str, options: MessagesOptions) -> None:
        self.request = request
        self.model = model
        self.options = options
        self.index = -1
        self.open: str | None = None  # the kind of the open block: thinking, text

    def start(self, prompt: Usage) -> list[Event]:
        """``prompt``: the input as known before the answer (``message_delta`` has the final count)."""
        message: dict[str, Any] = {
            "id": self.request.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_body(Usage(prompt.prompt_tokens, 0, prompt.cached_tokens)),
        }
        return [("message_start", {"type": "message_start", "message": message}), ("ping", {"type": "ping"})]

    def _close(self) -> list[Event]:
        if self.open is None:
            return []
        self.open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def _begin(self, kind: str, block: dict[str, Any]) -> list[Event]:
        out = self._close()
        self.index += 1
        self.open = kind
        out.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": self.index, "content_block": block},
            )
        )
        return out

    def _delta(self, delta: dict[str, Any]) -> Event:
        return ("content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta})

    def idle(self) -> list[Event]:
        """An empty text delta (in a text block the answer then continues): activity for clients
        that count only content events as such (Claude Code's stream watchdog skips pings)."""
        out = [] if self.open == "text" else self._begin("text", {"type": "text", "text": ""})
        out.append(self._delta({"type": "text_delta", "text": ""}))
        return out

    def events(self, chunk: Chunk) -> list[Event]:
        out: list[Event] = []
        if chunk.reasoning and self.options.thinking:
            if self.open != "thinking":
                out += self._begin("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            out.append(self._delta({"type": "thinking_delta", "thinking": chunk.reasoning}))
        if chunk.text:
            if self.open != "text":
                out += self._begin("text", {"type": "text", "text": ""})
            out.append(self._delta({"type": "text_delta", "text": chunk.text}))
        for call in chunk.tool_calls:
            # A call with an id opens a tool_use block; a fragment without one continues its arguments.
            if call.id or self.open != "tool_use":
                block = {"type": "tool_use", "id": call.id or new_id("toolu"), "name": call.name, "input": {}}
                out += self._begin("tool_use", block)
            if call.arguments:
                out.append(self._delta({"type": "input_json_delta", "partial_json": call.arguments}))
        if chunk.finish_reason is not None:
            if self.index < 0:  # an empty answer still has its (empty) text block
                out += self._begin("text", {"type": "text", "text": ""})
            out += self._close()
            reason, sequence = stop_reason(chunk.finish_reason, chunk.stop_sequence, self.options)
            usage = usage_body(chunk.usage or Usage())
            out.append(
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": reason, "stop_sequence": sequence},
                        "usage": usage,
                    },
                )
            )
            out.append(("message_stop", {"type": "message_stop"}))
        return out
