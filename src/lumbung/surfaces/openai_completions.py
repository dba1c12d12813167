"""OpenAI legacy Completions (``POST /v1/completions``) <-> core types, in pure functions.

A raw prompt, no chat template: each prompt becomes a core ``CompletionRequest``; ``n`` choices per
prompt are ``n`` requests through the gateway (the engine batches them), seeded ``seed + i`` so that a
seeded request stays repeatable while its choices differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lumbung.errors import InvalidRequest, UnsupportedParameter
from lumbung.surfaces import logprobs as lp
from lumbung.surfaces.openai import fingerprint, logit_bias, validation_error
from lumbung.types import Chunk, Completion, CompletionRequest, SamplingParams, Usage, new_id

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for this endpoint


class StreamOptionsIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]


class CompletionRequestIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    model: Annotated[str, Field(min_length=1)]
    prompt: str | list[str] | list[int] | list[list[int]] | None
    best_of: Annotated[int, Field(ge=0, le=20)] | None = None
    echo: bool | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: Annotated[int, Field(ge=0, le=5)] | None = None
    max_tokens: Annotated[int, Field(ge=0)] | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    seed: int | None = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    stream: bool | None = None
    stream_options: StreamOptionsIn | None = None
    suffix: str | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    user: str | None = None
    speculative: bool | None = None  # lumbung extension: speculative decoding on/off (local models)


@dataclass(slots=True)
class CompletionsCall:
    """One API request: ``requests[i]`` produces choice ``i``; ``prompts[i]`` is its prompt text."""

    id: str
    created: int
    requests: list[CompletionRequest]
    prompts: list[str]
    n: int
    stream: bool = False
    include_usage: bool = False
    echo: bool = False
    logprobs: int | None = None
    extra_fields: list[str] = field(default_factory=list)


def _refuse(param: str, why: str) -> UnsupportedParameter:
    return UnsupportedParameter(f"Unsupported parameter: '{param}' {why}", param=param)


def _prompts(wire: CompletionRequestIn) -> list[str]:
    prompt = wire.prompt
    if prompt is None:
        raise InvalidRequest(
            "Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter"
        )
    if isinstance(prompt, str):
        return [prompt]
    if prompt and all(isinstance(p, str) for p in prompt):
        return [p for p in prompt if isinstance(p, str)]
    if not prompt:
        raise InvalidRequest("Invalid value for 'prompt': the list is empty.", param="prompt")
    raise _refuse("prompt", "as token ids is not supported: send text.")


def parse_completion_request(body: bytes) -> CompletionsCall:
    try:
        wire = CompletionRequestIn.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(exc) from exc
    n = wire.n or 1
    if wire.suffix:
        raise _refuse("suffix", "is not supported: the served models have no fill-in-the-middle mode.")
    if wire.best_of not in (None, 1, n):
        raise _refuse("best_of", "is supported only equal to 'n': lumbung returns every choice it generates.")
    if wire.echo and wire.logprobs is not None:
        raise _refuse(
            "echo", "together with 'logprobs' is not supported: prompt log probabilities are not computed."
        )
    if wire.stream_options is not None and not wire.stream:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
        )
    prompts = _prompts(wire)
    stop = [wire.stop] if isinstance(wire.stop, str) else list(wire.stop or [])
    sampling = SamplingParams(
        temperature=1.0 if wire.temperature is None else wire.temperature,
        top_p=1.0 if wire.top_p is None else wire.top_p,
        seed=wire.seed,
        presence_penalty=wire.presence_penalty or 0.0,
        frequency_penalty=wire.frequency_penalty or 0.0,
        max_tokens=DEFAULT_MAX_TOKENS if wire.max_tokens is None else wire.max_tokens,
        stop=stop,
        logprobs=wire.logprobs,
        logit_bias=logit_bias(wire.logit_bias),
        speculative=wire.speculative,
    )
    call_id = new_id("cmpl")
    requests, texts = [], []
    for prompt in prompts:
        for i in range(n):
            seed = None if wire.seed is None else wire.seed + i
            requests.append(
                CompletionRequest(
                    wire.model, prompt, replace(sampling, seed=seed), id=call_id, fanout=len(prompts) * n
                )
            )
            texts.append(prompt)
    return CompletionsCall(
        id=call_id,
        created=requests[0].created,
        requests=requests,
        prompts=texts,
        n=n,
        stream=bool(wire.stream),
        include_usage=bool(wire.stream and wire.stream_options and wire.stream_options.include_usage),
        echo=bool(wire.echo),
        logprobs=wire.logprobs,
        extra_fields=sorted(wire.model_extra or {}),
    )


def total_usage(call: CompletionsCall, usages: list[Usage]) -> Usage:
    """Prompt tokens count once per prompt (not once per choice), as OpenAI counts them."""
    total = Usage()
    for i, usage in enumerate(usages):
        if i % call.n == 0:
            total.prompt_tokens += usage.prompt_tokens
            total.cached_tokens += usage.cached_tokens
        total.completion_tokens += usage.completion_tokens
    return total


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _base(call: CompletionsCall, model: str) -> dict[str, Any]:
    return {
        "id": call.id,
        "object": "text_completion",
        "created": call.created,
        "model": model,
        "system_fingerprint": fingerprint(model),
    }


def completion_body(call: CompletionsCall, model: str, results: list[Completion]) -> dict[str, Any]:
    choices = []
    for index, (prompt, done) in enumerate(zip(call.prompts, results, strict=True)):
        head = prompt if call.echo else ""
        choices.append(
            {
                "text": head + done.text,
                "index": index,
                "logprobs": lp.openai_legacy(done.logprobs, len(head)) if call.logprobs is not None else None,
                "finish_reason": done.finish_reason,
            }
        )
    usage = total_usage(call, [r.usage for r in results])
    return {**_base(call, model), "choices": choices, "usage": usage_body(usage)}


class CompletionChunkWriter:
    """Renders tagged core chunks as streamed ``text_completion`` objects: the echoed prompt leads
    each choice's first chunk; finish_reason comes on the choice's last chunk; with include_usage, a
    last chunk with no choices carries the usage of the whole request."""

    def __init__(self, call: CompletionsCall, model: str) -> None:
        self.call = call
        self.base = _base(call, model)
        self.started: set[int] = set()
        self.offsets = [0] * len(call.requests)
        self.usages: dict[int, Usage] = {}

    def bodies(self, index: int, chunk: Chunk) -> list[dict[str, Any]]:
        text = chunk.text
        if index not in self.started:
            self.started.add(index)
            if self.call.echo:
                text = self.call.prompts[index] + text
        out: list[dict[str, Any]] = []
        if text or chunk.finish_reason is not None or chunk.logprobs:
            logprobs = None
            if self.call.logprobs is not None:
                logprobs = lp.openai_legacy(chunk.logprobs, self.offsets[index] + len(text) - len(chunk.text))
            self.offsets[index] += len(text)
            choice = {
                "text": text,
                "index": index,
                "logprobs": logprobs,
                "finish_reason": chunk.finish_reason,
            }
            out.append({**self.base, "choices": [choice]})
        if chunk.usage is not None:
            self.usages[index] = chunk.usage
            if self.call.include_usage and len(self.usages) == len(self.call.requests):
                ordered = [self.usages[i] for i in range(len(self.call.requests))]
                out.append({**self.base, "choices": [], "usage": usage_body(total_usage(self.call, ordered))})
        return out
