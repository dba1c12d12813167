"""OpenAI Chat Completions <-> core types, in pure functions (no HTTP here).

Fail closed: a parameter lumbung cannot honour is refused with a 400 naming it
(``REFUSALS``); ``docs/api-compatibility.md`` lists every parameter and a test keeps it true.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from lumbung import __version__
from lumbung.errors import ApiError, InvalidRequest, UnsupportedParameter
from lumbung.surfaces import logprobs as lp
from lumbung.surfaces.openai_wire import ChatCompletionRequestIn, ChatMessageIn
from lumbung.types import (
    ChatRequest,
    Chunk,
    Completion,
    Message,
    ResponseFormat,
    SamplingParams,
    Tool,
    ToolCall,
    Usage,
    new_id,
)


@dataclass(slots=True)
class ChatOptions:
    """What the surface itself must remember about a request (not the backend's business)."""

    stream: bool = False
    include_usage: bool = False
    n: int = 1  # choices: n requests through the gateway
    logprobs: bool = False
    extra_fields: list[str] = field(default_factory=list)


_TYPE_WORDS = {
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "a boolean",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
}


def param_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"str", "list[str]", "list[ContentPart]", "function-after"} or "[" in str(part):
            continue  # pydantic's union branch labels are not part of the request
        else:
            out += ("." if out else "") + str(part)
    return out


def validation_error(exc: ValidationError) -> InvalidRequest:
    """The first problem of a pydantic error, worded the way OpenAI words it."""
    err = exc.errors()[0]
    kind = err["type"]
    if kind == "json_invalid":
        return InvalidRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
            "using your HTTP library correctly. The OpenAI API expects a JSON payload.)",
            code="invalid_json",
        )
    param = param_path(tuple(err["loc"]))
    if not param:
        return InvalidRequest("The request body must be a JSON object.", code="invalid_type")
    if kind == "missing":
        return InvalidRequest(
            f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
        )
    if kind in _TYPE_WORDS:
        return InvalidRequest(
            f"Invalid type for '{param}': expected {_TYPE_WORDS[kind]}.", param=param, code="invalid_type"
        )
    return InvalidRequest(f"Invalid value for '{param}': {err['msg']}.", param=param, code="invalid_value")


def _refuse(param: str, why: str) -> UnsupportedParameter:
    return UnsupportedParameter(f"Unsupported parameter: '{param}' {why}", param=param)


def logit_bias(wire: dict[str, float] | None) -> dict[int, float]:
    """OpenAI's ``logit_bias``: token ids (as strings) to a bias clamped to [-100, 100], as OpenAI does.
    Whether an id exists in the vocabulary is the backend's to say (the vocabulary is the model's)."""
    out: dict[int, float] = {}
    for key, value in (wire or {}).items():
        try:
            token = int(key)
        except ValueError:
            token = -1
        if token < 0 or str(token) != key.strip():
            raise InvalidRequest(
                f"Invalid key in 'logit_bias': {key[:40]!r} is not a token id (a non-negative integer).",
                param="logit_bias",
                code="invalid_value",
            )
        out[token] = min(100.0, max(-100.0, float(value)))
    return out


def _check_refusals(wire: ChatCompletionRequestIn) -> None:
    if wire.top_logprobs is not None and not wire.logprobs:
        raise InvalidRequest(
            "Invalid value for 'top_logprobs': 'logprobs' must be true when 'top_logprobs' is set.",
            param="top_logprobs",
        )
    if wire.modalities and any(m != "text" for m in wire.modalities):
        raise _refuse("modalities", "may only be ['text']: audio output is not supported.")
    for name in ("audio", "prediction", "web_search_options", "functions", "function_call", "moderation"):
        if getattr(wire, name) is not None:
            raise _refuse(name, "is not supported.")
    if wire.store:
        raise _refuse("store", "is not supported: lumbung does not store chat completions.")
    if wire.service_tier not in (None, "auto", "default"):
        raise _refuse("service_tier", "may only be 'auto' or 'default'.")
    if wire.reasoning_effort is not None:
        raise _refuse("reasoning_effort", "is not supported by this model.")
    if wire.verbosity is not None:
        raise _refuse("verbosity", "is not supported.")
    if wire.stream_options is not None and not wire.stream:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
        )
    if wire.tool_choice is not None and wire.tool_choice != "none" and not wire.tools:
        raise InvalidRequest(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            param="tool_choice",
        )


def _text_of(msg: ChatMessageIn, index: int) -> str | None:
    if msg.content is None or isinstance(msg.content, str):
        return msg.content if msg.content is not None else msg.refusal
    texts = []
    for j, part in enumerate(msg.content):
        if part.type != "text" or part.text is None:
            raise _refuse(
                f"messages[{index}].content[{j}].type",
                f"'{part.type}' is not supported: this model reads text only.",
            )
        texts.append(part.text)
    return "\n".join(texts)


def _message(msg: ChatMessageIn, index: int) -> Message:
    if msg.role == "function":
        raise _refuse(f"messages[{index}].role", "'function' is deprecated and not supported; use 'tool'.")
    role = "system" if msg.role == "developer" else msg.role
    if role == "tool" and not msg.tool_call_id:
        raise InvalidRequest(
            f"Missing required parameter: 'messages[{index}].tool_call_id'.",
            param=f"messages[{index}].tool_call_id",
        )
    calls = [ToolCall(c.id, c.function.name, c.function.arguments) for c in msg.tool_calls or []]
    if role != "assistant" and calls:
        raise InvalidRequest(
            f"Invalid parameter: 'messages[{index}].tool_calls' is only allowed on assistant messages.",
            param=f"messages[{index}].tool_calls",
        )
    content = _text_of(msg, index)
    if content is None and role != "assistant":
        raise InvalidRequest(
            f"Invalid value for 'messages[{index}].content': expected a string or an array of parts.",
            param=f"messages[{index}].content",
        )
    return Message(
        role=role,
        content=content,
        name=msg.name,
        tool_calls=calls,
        tool_call_id=msg.tool_call_id,
    )


def _response_format(wire: ChatCompletionRequestIn) -> ResponseFormat:
    rf = wire.response_format
    if rf is None or rf.type == "text":
        return ResponseFormat()
    if rf.type == "json_object":
        return ResponseFormat(type="json_object")
    if rf.json_schema is None:
        raise InvalidRequest(
            "Missing required parameter: 'response_format.json_schema'.", param="response_format.json_schema"
        )
    return ResponseFormat(
        type="json_schema",
        schema=rf.json_schema.schema_,
        name=rf.json_schema.name,
        strict=bool(rf.json_schema.strict),
    )


def parse_chat_request(body: bytes) -> tuple[ChatRequest, ChatOptions]:
    try:
        wire = ChatCompletionRequestIn.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(exc) from exc
    _check_refusals(wire)
    stop = [wire.stop] if isinstance(wire.stop, str) else list(wire.stop or [])
    max_tokens = wire.max_completion_tokens if wire.max_completion_tokens is not None else wire.max_tokens
    sampling = SamplingParams(
        temperature=1.0 if wire.temperature is None else wire.temperature,
        top_p=1.0 if wire.top_p is None else wire.top_p,
        seed=wire.seed,
        presence_penalty=wire.presence_penalty or 0.0,
        frequency_penalty=wire.frequency_penalty or 0.0,
        max_tokens=max_tokens,
        logprobs=(wire.top_logprobs or 0) if wire.logprobs else None,
        stop=stop,
        logit_bias=logit_bias(wire.logit_bias),
        speculative=wire.speculative,
    )
    tool_choice: str | dict[str, Any] = "auto"
    if isinstance(wire.tool_choice, str):
        tool_choice = wire.tool_choice
    elif wire.tool_choice is not None:
        tool_choice = {"type": "function", "name": wire.tool_choice.function.name}
    request = ChatRequest(
        model=wire.model,
        messages=[_message(m, i) for i, m in enumerate(wire.messages)],
        sampling=sampling,
        response_format=_response_format(wire),
        tools=[
            Tool(
                t.function.name, t.function.description, t.function.parameters or {}, bool(t.function.strict)
            )
            for t in wire.tools or []
        ],
        tool_choice=tool_choice,
        parallel_tool_calls=wire.parallel_tool_calls is not False,
        think=wire.chat_template_kwargs.enable_thinking if wire.chat_template_kwargs else None,
        user=wire.user,
        metadata=dict(wire.metadata or {}),
        id=new_id("chatcmpl"),
    )
    options = ChatOptions(
        stream=bool(wire.stream),
        include_usage=bool(wire.stream and wire.stream_options and wire.stream_options.include_usage),
        n=wire.n or 1,
        logprobs=bool(wire.logprobs),
        extra_fields=sorted(wire.model_extra or {}),
    )
    return request, options


def choice_requests(request: ChatRequest, n: int) -> list[ChatRequest]:
    """One core request per choice; a seeded request stays repeatable while its choices differ."""
    if n == 1:
        return [request]
    seed = request.sampling.seed
    return [
        replace(
            request, sampling=replace(request.sampling, seed=None if seed is None else seed + i), fanout=n
        )
        for i in range(n)
    ]


def total_usage(usages: list[Usage]) -> Usage:
    """The prompt counts once however many choices there are, as OpenAI counts it."""
    return Usage(
        prompt_tokens=usages[0].prompt_tokens,
        completion_tokens=sum(u.completion_tokens for u in usages),
        cached_tokens=usages[0].cached_tokens,
    )


def fingerprint(model: str) -> str:
    return "fp_" + hashlib.sha256(f"lumbung-{__version__}-{model}".encode()).hexdigest()[:10]


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _tool_calls_body(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls
    ]


def _choice(index: int, completion: Completion, logprobs: bool) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": completion.text if completion.text or not completion.tool_calls else None,
        "refusal": None,
        "annotations": [],
    }
    if completion.tool_calls:
        message["tool_calls"] = _tool_calls_body(completion.tool_calls)
    if completion.reasoning:
        message["reasoning_content"] = completion.reasoning
    return {
        "index": index,
        "message": message,
        "logprobs": lp.openai_chat(completion.logprobs) if logprobs else None,
        "finish_reason": completion.finish_reason,
    }


def completion_body(
    request: ChatRequest, model: str, completion: Completion, *more: Completion, logprobs: bool = False
) -> dict[str, Any]:
    """The whole answer; ``more`` are the further choices when n > 1."""
    choices = [completion, *more]
    return {
        "id": request.id,
        "object": "chat.completion",
        "created": request.created,
        "model": model,
        "system_fingerprint": fingerprint(model),
        "service_tier": "default",
        "choices": [_choice(i, c, logprobs) for i, c in enumerate(choices)],
        "usage": usage_body(total_usage([c.usage for c in choices])),
    }


class ChunkWriter:
    """Renders a core chunk stream as ``chat.completion.chunk`` objects, with OpenAI's framing:
    the role on the first delta only, finish_reason on the last choice chunk, usage in a final
    chunk with no choices when ``include_usage`` is set."""

    def __init__(
        self, request: ChatRequest, model: str, include_usage: bool, n: int = 1, logprobs: bool = False
    ) -> None:
        self.base = {
            "id": request.id,
            "object": "chat.completion.chunk",
            "created": request.created,
            "model": model,
            "system_fingerprint": fingerprint(model),
            "service_tier": "default",
        }
        self.include_usage = include_usage
        self.n = n
        self.started: set[int] = set()
        self.tool_index: dict[int, int] = {}  # per choice: the next call index on the wire
        self.wire_index: dict[tuple[int, int], int] = {}  # (choice, core call index) -> wire index
        self.usages: dict[int, Usage] = {}
        self.logprobs = logprobs

    def _chunk(
        self, delta: dict[str, Any], finish_reason: str | None, index: int = 0, logprobs: Any = None
    ) -> dict[str, Any]:
        body = {
            **self.base,
            "choices": [
                {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
            ],
        }
        if self.include_usage:
            body["usage"] = None
        return body

    def _call_deltas(self, call: ToolCall, choice: int) -> list[dict[str, Any]]:
        """OpenAI's shape: a call's index, id, type and name once, then its arguments in fragments."""
        if not call.id:  # a fragment continuing an open call
            index = self.wire_index.get((choice, call.index), max(self.tool_index.get(choice, 1) - 1, 0))
            return [{"index": index, "function": {"arguments": call.arguments}}] if call.arguments else []
        index = self.wire_index[(choice, call.index)] = self.tool_index.get(choice, 0)
        self.tool_index[choice] = index + 1
        function = {"name": call.name, "arguments": ""}
        head = {"index": index, "id": call.id, "type": "function", "function": function}
        tail = [{"index": index, "function": {"arguments": call.arguments}}] if call.arguments else []
        return [head, *tail]

    def bodies(self, chunk: Chunk, index: int = 0) -> list[dict[str, Any]]:
        """The chunks for one core chunk of choice ``index``."""
        out = []
        delta: dict[str, Any] = {}
        if index not in self.started:
            self.started.add(index)
            out.append(self._chunk({"role": "assistant", "content": "", "refusal": None}, None, index))
        if chunk.reasoning:
            delta["reasoning_content"] = chunk.reasoning
        if chunk.text:
            delta["content"] = chunk.text
        if delta or (self.logprobs and chunk.logprobs):
            logprobs = lp.openai_chat(chunk.logprobs) if self.logprobs else None
            out.append(self._chunk(delta, None, index, logprobs))
        for call in chunk.tool_calls:
            out.extend(self._chunk({"tool_calls": [d]}, None, index) for d in self._call_deltas(call, index))
        if chunk.finish_reason is not None:
            out.append(self._chunk({}, chunk.finish_reason, index))
            if chunk.usage is not None:
                self.usages[index] = chunk.usage
            if self.include_usage and len(self.usages) == self.n:
                usage = total_usage([self.usages[i] for i in sorted(self.usages)])
                out.append({**self.base, "choices": [], "usage": usage_body(usage)})
        return out


def error_body(exc: ApiError) -> dict[str, Any]:
    return {"error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}}
