"""Ollama's native API <-> core types, in pure functions (no HTTP here).

Ollama streams by default (NDJSON, one object a line, the last with ``done: true`` and timings in
nanoseconds); tool-call arguments are JSON objects, not text; errors are ``{"error": "..."}``.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from lumbung import __version__
from lumbung.errors import ApiError, InvalidRequest, UnsupportedParameter
from lumbung.surfaces import logprobs as lp
from lumbung.surfaces.ollama_wire import ChatIn, GenerateIn, MessageIn, OptionsIn
from lumbung.types import (
    ChatRequest,
    Chunk,
    CompletionRequest,
    Message,
    ModelInfo,
    ResponseFormat,
    SamplingParams,
    Tool,
    ToolCall,
    Usage,
    new_id,
)

# The Ollama release whose API lumbung speaks; clients that check a minimum version read this.
OLLAMA_API_VERSION = "0.12.0"


# Lower layers name the core request's parameters in Chat Completions' words; an Ollama client is
# told the option it sent.
_CORE_PARAMS = (
    (re.compile(r"\bresponse_format(\.json_schema\.schema)?\b"), "format"),
    (re.compile(r"\bmax_tokens\b"), "num_predict"),
)


def error_body(exc: ApiError) -> dict[str, Any]:
    message = exc.message
    for pattern, replacement in _CORE_PARAMS:
        message = pattern.sub(replacement, message)
    return {"error": message}


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat().replace("+00:00", "Z")


T = TypeVar("T", bound=BaseModel)


def parse(model: type[T], body: bytes) -> T:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        if err["type"] == "json_invalid":
            raise InvalidRequest("invalid JSON in the request body") from exc
        where = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        if not where:
            raise InvalidRequest("the request body must be a JSON object") from exc
        if err["type"] == "missing":
            raise InvalidRequest(f"{where} is required", param=where) from exc
        raise InvalidRequest(f"invalid {where}: {err['msg']}", param=where) from exc


# Go's time.ParseDuration, which Ollama uses: signed, one or more "<number><unit>" parts ("1h30m").
_DURATION = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")
FOREVER = -1.0
# What Ollama shows for a model kept forever: now plus the longest Go duration (about 292 years).
FOREVER_SECONDS = (2**63 - 1) / 1e9


def keep_alive_seconds(value: object) -> float | None:
    """Ollama's keep_alive in seconds: a Go duration string ("5m", "1h30m", "0"), or seconds as a
    number; negative means forever (``FOREVER``). A string of bare seconds ("300") is accepted too,
    which Ollama refuses. Longer than Go's longest duration (about 292 years) is forever too: no
    clock or date can hold it. Anything else is a 400 naming the field."""
    if value is None:
        return None
    seconds: float | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = float(max(-(2**63), min(2**63, value)))  # a JSON integer of any length: no OverflowError
    elif isinstance(value, float):
        seconds = value
    elif isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        elif _DURATION.fullmatch(text):
            total = sum(float(n) * _UNIT[u] for n, u in _PART.findall(text))
            seconds = -total if text.startswith("-") else total
    if seconds is None or not math.isfinite(seconds):
        raise InvalidRequest(
            f'invalid keep_alive: {json.dumps(value, default=str)[:80]} (use a duration such as "5m" or '
            '"1h30m", or seconds as a number; negative keeps the model loaded forever)',
            param="keep_alive",
        )
    return FOREVER if seconds < 0 or seconds > FOREVER_SECONDS else seconds


def _refuse(param: str, why: str) -> UnsupportedParameter:
    return UnsupportedParameter(f"{param} {why}", param=param)


def sampling(options: OptionsIn | None, context_length: int | None) -> SamplingParams:
    o = options or OptionsIn()
    if o.mirostat:
        raise _refuse("options.mirostat", "is not supported: use temperature, top_k, top_p or min_p")
    for name in ("typical_p", "tfs_z"):
        value = getattr(o, name)
        if value is not None and value != 1.0:
            raise _refuse(f"options.{name}", "is not supported (only 1.0, which turns it off)")
    if o.repeat_last_n not in (None, -1):
        raise _refuse("options.repeat_last_n", "is not supported: penalties look at the whole answer (-1)")
    if o.penalize_newline is False:
        raise _refuse("options.penalize_newline", "false is not supported")
    if o.num_ctx is not None and context_length is not None and o.num_ctx > context_length:
        raise _refuse(
            "options.num_ctx",
            f"{o.num_ctx} is larger than this model's configured context ({context_length})",
        )
    max_tokens = None if o.num_predict is None or o.num_predict < 0 else o.num_predict
    return SamplingParams(
        temperature=0.8 if o.temperature is None else o.temperature,  # Ollama's defaults
        top_k=40 if o.top_k is None else o.top_k,
        top_p=0.9 if o.top_p is None else o.top_p,
        min_p=o.min_p or 0.0,
        seed=o.seed,
        max_tokens=max_tokens,
        stop=list(o.stop or []),
        repeat_penalty=1.0 if o.repeat_penalty is None else o.repeat_penalty,
        presence_penalty=o.presence_penalty or 0.0,
        frequency_penalty=o.frequency_penalty or 0.0,
    )


def response_format(fmt: str | dict[str, Any] | None) -> ResponseFormat:
    if fmt is None or fmt == "":
        return ResponseFormat()
    if fmt == "json":
        return ResponseFormat(type="json_object")
    if isinstance(fmt, dict):
        return ResponseFormat(type="json_schema", schema=fmt)  # best effort, as in Ollama
    raise InvalidRequest(f'invalid format: {fmt!r} (use "json" or a JSON schema)', param="format")


@dataclass(slots=True)
class OllamaCall:
    """What the surface remembers about a chat or generate request."""

    stream: bool = True
    think: bool = False
    keep_alive: float | None = None  # seconds (FOREVER: never unload); None: the model's current one
    load_only: bool = False  # no prompt or messages: load (or, with keep_alive 0, unload) and answer

    @property
    def unload(self) -> bool:
        """Ollama's unload request: no prompt or messages, and keep_alive 0."""
        return self.load_only and self.keep_alive == 0

    started: float = field(default_factory=time.perf_counter)
    extra_fields: list[str] = field(default_factory=list)


def _arguments(args: dict[str, Any] | str) -> str:
    return args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)


def _messages(wire: list[MessageIn]) -> list[Message]:
    out: list[Message] = []
    calls_by_name: dict[str, str] = {}
    for i, m in enumerate(wire):
        if m.images:
            raise _refuse(f"messages[{i}].images", "are not supported: this model reads text only")
        if m.role not in ("system", "user", "assistant", "tool"):
            raise InvalidRequest(f"invalid role in messages[{i}]: {m.role!r}", param=f"messages[{i}].role")
        calls = []
        for call in m.tool_calls or []:
            call_id = call.id or new_id("call")
            calls_by_name[call.function.name] = call_id
            calls.append(ToolCall(call_id, call.function.name, _arguments(call.function.arguments)))
        tool_call_id = m.tool_call_id
        if m.role == "tool" and tool_call_id is None:
            # Ollama names the tool, not the call: answer the latest call of that name.
            tool_call_id = calls_by_name.get(m.tool_name or "") or new_id("call")
        out.append(
            Message(
                role=m.role,  # type: ignore[arg-type]
                content=m.content if m.content is not None or m.role == "assistant" else "",
                name=m.tool_name,
                tool_calls=calls,
                tool_call_id=tool_call_id if m.role == "tool" else None,
                reasoning=m.thinking,
            )
        )
    return out


def _logprobs(wanted: bool | None, top: int | None, s: SamplingParams) -> None:
    if wanted or top:
        s.logprobs = top or 0


def _think(value: bool | str | None) -> bool:
    return value is not None and value is not False and value != "false"


def parse_chat(wire: ChatIn, info: ModelInfo | None = None) -> tuple[ChatRequest, OllamaCall]:
    for i, tool in enumerate(wire.tools or []):
        if tool.type != "function":
            raise _refuse(f"tools[{i}].type", f"{tool.type!r} is not supported: only function tools")
    s = sampling(wire.options, info.context_length if info else None)
    _logprobs(wire.logprobs, wire.top_logprobs, s)
    request = ChatRequest(
        model=wire.model,
        messages=_messages(wire.messages),
        sampling=s,
        response_format=response_format(wire.format),
        tools=[
            Tool(t.function.name, t.function.description, t.function.parameters or {})
            for t in wire.tools or []
        ],
    )
    call = OllamaCall(
        stream=wire.stream is not False,
        think=_think(wire.think),
        keep_alive=keep_alive_seconds(wire.keep_alive),
        load_only=not wire.messages,
        extra_fields=sorted(wire.model_extra or {}),
    )
    return request, call


def parse_generate(
    wire: GenerateIn, info: ModelInfo | None = None
) -> tuple[ChatRequest | CompletionRequest, OllamaCall]:
    if wire.template:
        raise _refuse("template", "is not supported: the model's own chat template is used (or raw: true)")
    if wire.context:
        raise _refuse(
            "context", "is not supported (deprecated by Ollama): send the conversation to /api/chat"
        )
    if wire.suffix:
        raise _refuse("suffix", "is not supported: the served models have no fill-in-the-middle mode")
    if wire.images:
        raise _refuse("images", "are not supported: this model reads text only")
    for name in ("width", "height", "steps"):
        if (wire.model_extra or {}).get(name) is not None:
            raise _refuse(name, "is not supported: lumbung does not generate images")
    s = sampling(wire.options, info.context_length if info else None)
    _logprobs(wire.logprobs, wire.top_logprobs, s)
    call = OllamaCall(
        stream=wire.stream is not False,
        think=_think(wire.think),
        keep_alive=keep_alive_seconds(wire.keep_alive),
        load_only=not wire.prompt,
        extra_fields=sorted(wire.model_extra or {}),
    )
    fmt = response_format(wire.format)
    if wire.raw:
        if fmt.type != "text":
            raise _refuse("format", "is not supported with raw: true")
        return CompletionRequest(model=wire.model, prompt=wire.prompt or "", sampling=s), call
    messages = [Message(role="system", content=wire.system)] if wire.system else []
    messages.append(Message(role="user", content=wire.prompt or ""))
    return ChatRequest(model=wire.model, messages=messages, sampling=s, response_format=fmt), call


def done_reason(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


def _ns(seconds: float) -> int:
    return max(0, int(seconds * 1e9))


class Timer:
    """Ollama's timings: prompt evaluation until the first chunk, generation after it."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.first: float | None = None

    def mark(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()

    def fields(self, usage: Usage | None) -> dict[str, Any]:
        end = time.perf_counter()
        first = self.first or end
        usage = usage or Usage()
        return {
            "total_duration": _ns(end - self.started),
            "load_duration": 0,
            "prompt_eval_count": usage.prompt_tokens,
            "prompt_eval_duration": _ns(first - self.started),
            "eval_count": usage.completion_tokens,
            "eval_duration": _ns(end - first),
        }


def tool_calls_body(calls: list[ToolCall]) -> list[dict[str, Any]]:
    out = []
    for i, call in enumerate(calls):
        try:
            args = json.loads(call.arguments) if call.arguments else {}
        except ValueError:
            args = {}
        out.append(
            {
                "id": call.id,
                "function": {
                    "index": i,
                    "name": call.name,
                    "arguments": args if isinstance(args, dict) else {},
                },
            }
        )
    return out


class LineWriter:
    """Renders core chunks as Ollama's objects, for /api/chat (``message``) or /api/generate
    (``response``); the same objects are NDJSON lines when streaming."""

    def __init__(self, model: str, call: OllamaCall, chat: bool) -> None:
        self.model = model
        self.call = call
        self.chat = chat
        self.timer = Timer(call.started)
        self.calls: list[ToolCall] = []  # Ollama sends whole calls: fragments wait for the finish

    def _gather(self, calls: list[ToolCall]) -> None:
        for call in calls:
            if call.id or not self.calls:
                self.calls.append(ToolCall(call.id, call.name, call.arguments))
            else:
                self.calls[-1].arguments += call.arguments

    def waiting(self) -> dict[str, Any]:
        """A chunk that adds nothing: sent while the prompt is still being read (keep-alive)."""
        out: dict[str, Any] = {"model": self.model, "created_at": now_iso()}
        if self.chat:
            out["message"] = {"role": "assistant", "content": ""}
        else:
            out["response"] = ""
        out["done"] = False
        return out

    def body(self, chunk: Chunk) -> dict[str, Any] | None:
        self.timer.mark()
        thinking = chunk.reasoning if self.call.think else ""
        self._gather(chunk.tool_calls)
        calls = self.calls if chunk.finish_reason is not None else []
        if not (chunk.text or thinking or calls or chunk.finish_reason or chunk.logprobs):
            return None
        out: dict[str, Any] = {"model": self.model, "created_at": now_iso()}
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": chunk.text}
            if thinking:
                message["thinking"] = thinking
            if calls:
                message["tool_calls"] = tool_calls_body(calls)
            out["message"] = message
        else:
            out["response"] = chunk.text
            if thinking:
                out["thinking"] = thinking
        if chunk.logprobs:
            out["logprobs"] = lp.ollama(chunk.logprobs)
        out["done"] = chunk.finish_reason is not None
        if chunk.finish_reason is not None:
            out["done_reason"] = done_reason(chunk.finish_reason)
            out.update(self.timer.fields(chunk.usage))
        return out

    def loaded(self, reason: str = "load") -> dict[str, Any]:
        """The answer to a request with no prompt or messages: the model was loaded (``load``) or
        is unloading (``unload``), nothing else."""
        out: dict[str, Any] = {"model": self.model, "created_at": now_iso()}
        if self.chat:
            out["message"] = {"role": "assistant", "content": ""}
        else:
            out["response"] = ""
        return {**out, "done": True, "done_reason": reason}


def version_body() -> dict[str, Any]:
    return {"version": OLLAMA_API_VERSION, "lumbung": __version__}


def _human_parameters(n: int) -> str:
    if n >= 1_000_000_000:
        return f"{n / 1e9:.1f}B"
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    return str(n)


def details_body(info: ModelInfo) -> dict[str, Any]:
    family = str(info.details.get("architecture") or "")
    params = info.details.get("parameters")
    return {
        "parent_model": "",
        "format": str(info.details.get("format") or "gguf"),
        "family": family,
        "families": [family] if family else None,
        "parameter_size": _human_parameters(int(params)) if params else "",
        "quantization_level": str(info.details.get("quantization") or ""),
    }


def tags_body(models: list[ModelInfo]) -> dict[str, Any]:
    """/api/tags: every name a model answers to as its own entry, as Ollama lists each tag of a model."""
    return {"models": [model_entry(m, name) for m in models for name in (m.id, *m.aliases)]}


def model_entry(info: ModelInfo, name: str | None = None) -> dict[str, Any]:
    return {
        "name": name or info.id,
        "model": name or info.id,
        "modified_at": iso(info.created),
        "size": int(info.details.get("size_bytes") or 0),
        "digest": str(info.details.get("digest") or ""),
        "details": details_body(info),
    }


def capabilities(info: ModelInfo) -> list[str]:
    """As Ollama names them. Every generative model calls tools (each family's syntax is parsed);
    ``embedding`` only for embedding models, as in Ollama, whose CLI embeds instead of chatting
    with a model that has it (lumbung's generative models embed too, through the same endpoints)."""
    if info.details.get("embedding"):
        return ["embedding"]
    return ["completion", "tools", *(["thinking"] if info.details.get("thinking") else [])]


def show_body(info: ModelInfo) -> dict[str, Any]:
    model_info: dict[str, Any] = {}
    family = info.details.get("architecture")
    if family:
        model_info["general.architecture"] = family
        if info.context_length:
            model_info[f"{family}.context_length"] = info.context_length
    if info.details.get("parameters"):
        model_info["general.parameter_count"] = info.details["parameters"]
    return {
        "modelfile": f"# served by lumbung\nFROM {info.id}\n",
        "parameters": "",
        "template": str(info.details.get("chat_template_source") or ""),
        "details": details_body(info),
        "model_info": model_info,
        "capabilities": capabilities(info),
        "license": str(info.details.get("license") or ""),
        "modified_at": iso(info.created),
    }


def expires_at(info: ModelInfo, now: float) -> float:
    """When an idle keep-alive unloads the model. Kept forever: far in the future, as Ollama shows
    it. In use: as if its last request ended now (the keep-alive counts from then)."""
    at = info.details.get("expires_at")
    forever = now + FOREVER_SECONDS
    if at is not None:  # a configured keep_alive may be any float: never past what a date can show
        return min(float(at), forever) if math.isfinite(float(at)) else forever
    keep_alive = float(info.details.get("keep_alive", FOREVER))
    if keep_alive < 0 or not math.isfinite(keep_alive):
        return forever
    return now + min(keep_alive, FOREVER_SECONDS)


def ps_body(models: list[ModelInfo], now: float) -> dict[str, Any]:
    """/api/ps: loaded models, the one that stays longest first (as Ollama sorts them)."""
    entries = [(expires_at(m, now), m) for m in models if m.loaded]
    entries.sort(key=lambda e: e[0], reverse=True)
    return {"models": [ps_entry(m, at) for at, m in entries]}


def ps_entry(info: ModelInfo, expires: float) -> dict[str, Any]:
    # size is the memory the model holds (weights and KV cache), all in RAM: no VRAM on this engine.
    size = int(info.details.get("memory_bytes") or info.details.get("size_bytes") or 0)
    return {
        **model_entry(info),
        "size": size,
        "size_vram": 0,
        "expires_at": iso(expires),
        "context_length": info.context_length,
    }
