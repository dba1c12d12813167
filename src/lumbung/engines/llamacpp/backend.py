"""The local backend: GGUF models served in process by llama.cpp, loaded on first use.

``LocalModel`` turns a core request into prompt tokens (chat template, tokenizer, context check)
and a ``Sequence`` for its ``Engine``; ``LlamaCppBackend`` holds the configured models. A model's
LoRA adapters are served as models of their own (``AdapterSpec.id``): a request for one runs on the
base model's engine with the adapter applied to its sequence (lora.py).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from lumbung import toolcalls
from lumbung.engines.base import Embeddings, ModelStats
from lumbung.engines.llamacpp.amx import use_extra_buffers
from lumbung.engines.llamacpp.embedder import Embedder, EmbedderConfig, pooling_for, run_stoppable
from lumbung.engines.llamacpp.engine import Engine, EngineConfig, Sequence
from lumbung.engines.llamacpp.facts import FileFacts
from lumbung.engines.llamacpp.grammar import (
    GrammarCompiler,
    MaskSampler,
    Plan,
    Trigger,
    grammar_failure,
    request_grammar,
)
from lumbung.engines.llamacpp.lora import Adapter, LoraSet
from lumbung.engines.llamacpp.manager import ModelManager
from lumbung.engines.llamacpp.model import LlamaModel
from lumbung.engines.llamacpp.templates import ChatTemplate, select_template
from lumbung.errors import (
    ContextLengthExceeded,
    EngineError,
    InvalidRequest,
    ModelFileError,
    ModelUnavailable,
    Overloaded,
    UnsupportedParameter,
)
from lumbung.toolcalls.output import OutputShaper
from lumbung.toolcalls.render import adapt_messages
from lumbung.types import ChatRequest, Chunk, CompletionRequest, EmbeddingInputs, ModelInfo, Usage

log = logging.getLogger(__name__)

EMBED_CONTEXT = 4096  # most tokens in one embedding input


@dataclass
class AdapterSpec:
    """A LoRA adapter (GGUF) over a local model, served as the model ``id``. ``path`` may be a
    callable that checks and produces the file (the store's integrity check)."""

    name: str
    id: str
    path: Path | Callable[[], Path]
    scale: float = 1.0
    details: dict[str, Any] = field(default_factory=dict)  # the store's manifest facts (licence, digest)

    def resolve_path(self) -> Path:
        return self.path() if callable(self.path) else self.path


@dataclass
class LocalModelSpec:
    """A model the local backend can load. ``path`` may be a callable that produces the file."""

    id: str
    path: Path | Callable[[], Path]
    aliases: list[str] = field(default_factory=list)
    chat_template: str | None = None
    tool_format: str | None = None
    engine: EngineConfig = field(default_factory=EngineConfig)
    keep_alive: float = 300.0
    embedding: bool = False  # an embedding model: pooled vectors only, no text generation
    created: int = field(default_factory=lambda: int(time.time()))
    details: dict[str, Any] = field(default_factory=dict)  # known before loading (the store's manifest)
    adapters: list[AdapterSpec] = field(default_factory=list)

    def resolve_path(self) -> Path:
        return self.path() if callable(self.path) else self.path


def memory_breakdown(loaded: LocalModel) -> dict[str, int]:
    """Where a loaded model's memory goes: its weights (mapped from the file), its KV cache and the
    compute buffers as llama.cpp allocated them (of the KV, ``kv_window`` is a sliding-window
    model's window-sized part), the context checkpoints its prefix cache holds (swa.py) and its
    LoRA adapters and speculative draft model."""
    engine = loaded.engine
    buffers = engine.buffers
    return {
        "weights": loaded.model.size_bytes,
        "kv": buffers.get("KV", engine.n_ctx * engine.kv_bytes_per_cell + engine.kv_window_bytes),
        "kv_window": engine.kv_window_bytes,
        "kv_checkpoints": engine.checkpoint_bytes,
        "compute": buffers.get("compute", 0) + buffers.get("output", 0),
        "adapters": sum(a.size_bytes for a in loaded.adapters.values()),
        "draft_model": engine.draft.memory_bytes if engine.draft else 0,  # its weights and KV
    }


def expected_context(spec: LocalModelSpec) -> int | None:
    """A model's context before it loads: the configured or trained one (the memory budget may
    lower it at load; once loaded, the engine's own figure is reported)."""
    trained = spec.details.get("context_length_trained")
    configured = spec.engine.context_size
    if not isinstance(trained, int) or trained <= 0:
        return configured
    if configured is None or (configured > trained and spec.engine.rope_scaling is None):
        return trained
    return configured


class LocalModel:
    """A loaded model: weights, chat template and the engine thread that decodes for it."""

    def __init__(self, spec: LocalModelSpec, request_timeout: float) -> None:
        self.spec = spec
        self.request_timeout = request_timeout
        self.path = path = spec.resolve_path()
        self.model = LlamaModel(path, extra_buffers=use_extra_buffers(path, spec.engine.amx))
        try:
            self.template: ChatTemplate = select_template(
                override=spec.chat_template,
                gguf_template=self.model.chat_template,
                architecture=self.model.architecture,
                bos_token=self.model.token_text(self.model.bos),
                eos_token=self.model.token_text(self.model.eos),
            )
            self.stop_tokens = frozenset(self._single_tokens(self.template.stop_strings))
            self.tool_format = toolcalls.detect(
                override=spec.tool_format, template=self.template.source, architecture=self.model.architecture
            )
            self.grammars = GrammarCompiler(self.model, self.stop_tokens)
            # Markers that are special tokens (Mistral's [TOOL_CALLS], DeepSeek's, <think> in some
            # vocabularies) print as nothing by default; the parsers need to see them.
            splitter = self.tool_format.splitter(self.template.source, "")
            markers = (
                *self.tool_format.starts,
                *self.tool_format.ignore,
                self.tool_format.end or "",
                "<think>",
                "</think>",
                *(splitter.markers if splitter else ()),
            )
            self.shown_tokens = frozenset(
                t
                for m in markers
                if m
                and (t := self.grammars.special_token(m)) is not None
                and not self.model.piece(t)
                and t not in self.stop_tokens
            )
            digest = spec.details.get("digest")
            self.engine = Engine(
                self.model, spec.engine, name=spec.id, digest=digest if isinstance(digest, str) else None
            )
        except BaseException:
            self.model.close()
            raise
        self.loaded_at = time.time()
        self._embedder: Embedder | None = None
        self._embedder_lock = threading.Lock()
        self.adapters: dict[str, Adapter] = {}  # loaded on first use
        self._adapter_lock = threading.Lock()
        # One embedding request's batches at a time; the others wait here, on the event loop, not
        # in a worker thread each.
        self._embedding_turn = asyncio.Lock()
        self._in_flight: Counter[str] = Counter()  # sequences per API request id (its n choices)

    def lora(self, adapter: AdapterSpec) -> LoraSet:
        """The adapter loaded over this model (on first use; blocking: call from a worker thread).
        A file that fails its check or does not fit the model is refused; the base model serves on."""
        with self._adapter_lock:
            loaded = self.adapters.get(adapter.name)
            if loaded is None:
                try:
                    loaded = Adapter(self.model, adapter.name, adapter.resolve_path())
                except ModelFileError as exc:
                    raise ModelUnavailable(f"model {adapter.id!r} cannot be loaded: {exc}") from exc
                except EngineError as exc:
                    raise Overloaded(
                        f"model {adapter.id!r} could not be loaded: {exc}", retry_after=5
                    ) from exc
                self.adapters[adapter.name] = loaded
            return LoraSet((loaded,), (adapter.scale,))

    def embedder(self) -> Embedder:
        """The model's embedding context, created on first use (blocking: call from a worker thread)."""
        with self._embedder_lock:
            if self._embedder is None:
                config = EmbedderConfig(
                    # One input fills one micro-batch, whose compute buffers grow with its square:
                    # long contexts are for generation, embedding inputs stay within EMBED_CONTEXT.
                    context_size=min(self.context_size, EMBED_CONTEXT),
                    threads=self.spec.engine.threads,
                    pooling=pooling_for(self.model, self.spec.embedding),
                )
                self._embedder = Embedder(self.model, config)
            return self._embedder

    def _single_tokens(self, texts: list[str]) -> list[int]:
        out = []
        for text in texts:
            ids = self.model.tokenize(text, add_special=False, parse_special=True)
            if len(ids) == 1:
                out.append(ids[0])
        return out

    @property
    def memory_bytes(self) -> int:
        """Weights, the KV cache the engine allocated and the loaded adapters (the embedding context,
        if any, aside)."""
        return self.engine.memory_bytes + sum(a.size_bytes for a in self.adapters.values())

    @property
    def busy(self) -> bool:
        return self.engine.active > 0 or self.engine.queued > 0 or self.engine.outside > 0

    @property
    def last_used(self) -> float:
        return self.engine.last_used

    @property
    def context_size(self) -> int:
        """Tokens one request may use (prompt and answer): the engine's plan (context.py)."""
        return self.engine.context_size

    def close(self) -> None:
        self.engine.close()
        if self._embedder is not None:
            self._embedder.close()
        for adapter in self.adapters.values():
            adapter.close()
        self.model.close()

    def prompt_tokens(self, request: ChatRequest | CompletionRequest) -> tuple[list[int], list[str]]:
        """Render and tokenize; returns the tokens and the stop strings that apply."""
        if isinstance(request, ChatRequest):
            messages, tools = adapt_messages(request, self.tool_format, self.template.source)
            extra = {} if request.think is None else {"enable_thinking": request.think}
            text = self.template.render(messages, tools=tools, **extra)
            stops = self.template.stop_strings + request.sampling.stop
            bos_text = self.template.bos_token
            add_special = self.model.add_bos and not (bos_text and text.startswith(bos_text))
            tokens = self.model.tokenize(text, add_special=add_special, parse_special=True)
        else:
            stops = list(request.sampling.stop)
            tokens = self.model.tokenize(request.prompt, add_special=self.model.add_bos, parse_special=False)
        return tokens, stops

    def _constraint(self, request: ChatRequest) -> tuple[MaskSampler, Plan] | None:
        """Compile the request's grammar (a few ms; the vocabulary view once per model, ~2 s)."""
        plan = request_grammar(request, self.tool_format, self.grammars.literal)
        if plan is None:
            return None
        trigger = None
        if plan.trigger:
            trigger = Trigger(plan.trigger, self._token_text, self._tokenize_special)
        return self.grammars.sampler(self.grammars.matcher(plan.grammar, plan.where), trigger), plan

    def _token_text(self, token: int) -> str:
        if token in self.shown_tokens:
            return self.model.token_text(token)
        return self.model.piece(token).decode("utf-8", "replace")

    def _tokenize_special(self, text: str) -> list[int]:
        return self.model.tokenize(text, add_special=False, parse_special=True)

    def _shaper(self, request: ChatRequest, tokens: list[int]) -> OutputShaper | None:
        use_tools = bool(request.tools) and request.tool_choice != "none"
        think = None
        if request.think is not False:
            think = self.tool_format.splitter(self.template.source, self.model.detokenize(tokens[-8:]))
        if not use_tools and think is None:
            return None
        choice = request.tool_choice
        forced = None if choice in ("auto", "none") else choice if isinstance(choice, str) else choice["name"]
        return OutputShaper(
            fmt=self.tool_format if use_tools else None,
            tools=request.tools,
            think=think,
            forced=forced if use_tools else None,
        )

    def _check_logit_bias(self, bias: dict[int, float]) -> None:
        n = self.model.n_vocab
        if outside := sorted(t for t in bias if t >= n):
            raise InvalidRequest(
                f"Invalid value for 'logit_bias': token id {outside[0]} is out of range; this model's "
                f"vocabulary has ids 0 to {n - 1}.",
                param="logit_bias",
                code="invalid_value",
            )

    def _check_think(self, request: ChatRequest) -> None:
        if request.think is not None and "enable_thinking" not in self.template.source:
            raise UnsupportedParameter(
                "Unsupported parameter: 'chat_template_kwargs.enable_thinking': this model's chat "
                "template has no switch for reasoning.",
                param="chat_template_kwargs.enable_thinking",
            )

    async def stream(
        self, request: ChatRequest | CompletionRequest, adapter: AdapterSpec | None = None
    ) -> AsyncGenerator[Chunk, None]:
        if self.spec.embedding:
            raise InvalidRequest(
                f"The model `{self.spec.id}` is an embedding model and does not generate text; "
                "use it with the embeddings endpoints.",
                param="model",
            )
        self._check_logit_bias(request.sampling.logit_bias)
        self._check_fanout(request)
        constraint: MaskSampler | None = None
        plan: Plan | None = None
        if isinstance(request, ChatRequest):
            self._check_think(request)
            if compiled := await asyncio.to_thread(self._constraint, request):
                constraint, plan = compiled
        lora = None if adapter is None else await asyncio.to_thread(self.lora, adapter)
        tokens, stops = await asyncio.to_thread(self.prompt_tokens, request)
        shaper = self._shaper(request, tokens) if isinstance(request, ChatRequest) else None
        limit = self.context_size
        if len(tokens) >= limit:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {limit} tokens. However, your messages "
                f"resulted in {len(tokens)} tokens. Please reduce the length of the messages.",
                param="messages",
            )
        room = limit - len(tokens)
        wanted = request.sampling.max_tokens
        max_tokens = room if wanted is None else min(wanted, room)
        sampling = request.sampling
        if stops != sampling.stop:
            sampling = replace(sampling, stop=stops)
        loop = asyncio.get_running_loop()
        seq = Sequence(
            prompt=tokens,
            params=sampling,
            max_tokens=max_tokens,
            loop=loop,
            out=asyncio.Queue(),
            deadline=time.monotonic() + self.request_timeout,
            stop_tokens=self.stop_tokens,
            sampler_pre=(constraint,) if constraint is not None else (),
            shown_tokens=self.shown_tokens if shaper is not None else frozenset(),
            lora=lora,
        )
        self.engine.submit(seq, siblings=self._in_flight[request.id])
        self._in_flight[request.id] += 1
        finished = False
        first = True
        try:
            while True:
                item = await seq.out.get()
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                if first:  # admitted: the engine has counted the prefix it reused
                    item.prompt_usage = Usage(len(tokens), 0, seq.n_cached)
                    first = False
                if item.finish_reason is not None:
                    finished = True
                    if constraint is not None and plan is not None and constraint.failed:
                        raise grammar_failure(plan, constraint)  # never a silent invalid answer
                out = shaper.shape(item) if shaper is not None else item
                if plan is not None and plan.check is not None:
                    plan.check.observe(out)
                yield out
                if finished:
                    return
        finally:
            if not finished:  # the client went away, or the consumer stopped early
                self.engine.cancel(seq)
            self._in_flight[request.id] -= 1
            if not self._in_flight[request.id]:
                del self._in_flight[request.id]

    def _check_fanout(self, request: ChatRequest | CompletionRequest) -> None:
        """A request whose choices can never all be admitted at once is the client's to change:
        400 naming the limit, not a 429 that retrying cannot cure."""
        engine = self.spec.engine
        if request.fanout > engine.parallel + engine.max_queue:
            raise InvalidRequest(
                f"This request runs {request.fanout} sequences at once (n choices x prompts), more "
                f"than model `{self.spec.id}` ever takes: parallel ({engine.parallel}) + max_queue "
                f"({engine.max_queue}) = {engine.parallel + engine.max_queue}. Ask for fewer choices "
                "or prompts, or raise the model's `parallel` or `max_queue`.",
                param="n",
            )

    async def embed(self, inputs: EmbeddingInputs) -> Embeddings:
        """Pooled vectors; the request holds one of the engine's places while it waits and runs
        (429 beyond them), and a caller that is cancelled (the client left) stops it between batches."""
        self.engine.reserve()
        try:
            embedder = await asyncio.to_thread(self.embedder)
            if all(isinstance(x, str) for x in inputs):
                tokens = await asyncio.to_thread(embedder.tokenize, cast(list[str], inputs))
            else:
                tokens = embedder.check_tokens(cast(list[list[int]], inputs))
            async with self._embedding_turn:
                vectors = await run_stoppable(embedder.embed_tokens, tokens)
        finally:
            self.engine.unreserve()
        return Embeddings(vectors, sum(len(t) for t in tokens))


class LlamaCppBackend:
    """All local GGUF models; each loads on first use and unloads when idle (``ModelManager``)."""

    name = "local"

    def __init__(
        self,
        specs: list[LocalModelSpec],
        *,
        request_timeout: float = 600.0,
        loader: Callable[[LocalModelSpec, float], LocalModel] = LocalModel,
        memory_budget: int | None = None,
    ) -> None:
        self.specs = {s.id: s for s in specs}
        self.request_timeout = request_timeout
        self.facts = FileFacts()
        self.manager = ModelManager(
            lambda model_id: spec.keep_alive if (spec := self.specs.get(model_id)) else None,
            lambda model_id: loader(self.specs[model_id], self.request_timeout),
            memory_budget=memory_budget,
        )

    def _resolve(self, model_id: str) -> tuple[str, AdapterSpec | None]:
        """The id of the model that runs ``model_id``, and the adapter it names (None: the model)."""
        if model_id not in self.specs:
            for spec in self.specs.values():
                for adapter in spec.adapters:
                    if adapter.id == model_id:
                        return spec.id, adapter
        return model_id, None  # unknown ids go on to the manager's 404

    def model_stats(self) -> list[ModelStats]:
        """Every configured model (not its adapters: they run on its engine), loaded or not."""
        out = []
        for spec in self.specs.values():
            slot = self.manager.slots.get(spec.id)
            if slot is None:
                out.append(ModelStats(spec.id, loaded=False))
                continue
            loaded = cast(LocalModel, slot.model)
            s = loaded.engine.stats()
            out.append(
                ModelStats(
                    spec.id,
                    loaded=True,
                    memory_bytes=loaded.memory_bytes,
                    parallel=spec.engine.parallel,
                    running=s.active,
                    queued=s.queued,
                    kv_cells=s.kv_cells,
                    kv_cells_used=s.kv_used,
                    kv_bytes_per_cell=s.kv_bytes_per_cell,
                    kv_window_bytes=loaded.engine.kv_window_bytes,
                    kv_bytes_per_sequence=loaded.engine.kv_bytes_per_sequence,
                    prefix_cache_entries=s.cache_entries,
                    prefix_cache_cells=s.cache_cells,
                    prefix_cache_hits=s.cache_hits,
                    prefix_cache_misses=s.cache_misses,
                    prefix_cache_tokens=s.cached_tokens,
                    generated_tokens=s.generated_tokens,
                    refused=s.refused,
                    speculating=s.speculation is not None,
                    draft_tokens=s.speculation.drafted if s.speculation else 0,
                    accepted_draft_tokens=s.speculation.accepted if s.speculation else 0,
                    fast_forwarded_tokens=s.fast_forwarded_tokens,
                )
            )
        return out

    def models(self) -> list[ModelInfo]:
        out = []
        now = time.monotonic()
        for spec in self.specs.values():
            slot = self.manager.slots.get(spec.id)
            details: dict[str, Any] = {}
            loaded: LocalModel | None = None
            if slot is not None:
                loaded = cast(LocalModel, slot.model)
                stats = loaded.engine.stats()
                expires = slot.expires_in(now)
                details = {
                    "size_bytes": loaded.model.size_bytes,
                    "memory_bytes": loaded.memory_bytes,
                    "parameters": loaded.model.n_params,
                    "architecture": loaded.model.architecture,
                    "active_requests": stats.active,
                    "queued_requests": stats.queued,
                    "parallel": spec.engine.parallel,
                    "kv_cells": stats.kv_cells,
                    "kv_cells_used": stats.kv_used,
                    "kv_bytes": stats.kv_cells * stats.kv_bytes_per_cell + loaded.engine.kv_window_bytes,
                    "kv_bytes_used": stats.kv_used * stats.kv_bytes_per_cell,
                    "kv_bytes_per_sequence": loaded.engine.kv_bytes_per_sequence,
                    "kv_cache_type": spec.engine.kv_type,
                    "memory_breakdown": memory_breakdown(loaded),
                    "kv_bytes_f16": loaded.engine.kv_bytes_f16,  # what f16 would take
                    "context_length_trained": loaded.engine.context.trained,
                    "prefix_cache": {
                        "entries": stats.cache_entries,
                        "cells": stats.cache_cells,
                        "hits": stats.cache_hits,
                        "misses": stats.cache_misses,
                        "cached_tokens": stats.cached_tokens,
                    },
                    "loaded_at": int(loaded.loaded_at),
                    "expires_at": None if expires is None else int(time.time() + expires),
                    "keep_alive": slot.keep_alive,  # seconds idle before unloading; negative: forever
                    "speculative": _speculative_facts(loaded),
                    "fast_forwarded_tokens": stats.fast_forwarded_tokens,
                    "deterministic": spec.engine.deterministic,
                    "chat_template": loaded.template.name,
                    "thinking": "<think>" in loaded.template.source,
                }
            # The file's sha256 and template, learnt in the background from the first load on (the
            # path of a model not loaded yet may still be in the making: the embedded model's is).
            if loaded is not None:
                self.facts.learn(spec.id, loaded.path, digest_known="digest" in spec.details)
            details = self.facts.get(spec.id) | details
            details |= spec.details  # the store's facts win: the file's size, not the tensors'
            details["embedding"] = spec.embedding or bool(details.get("embedding"))
            adapters = [_adapter_facts(a, loaded) for a in spec.adapters]
            if adapters:
                details["adapters"] = adapters
            out.append(
                ModelInfo(
                    id=spec.id,
                    created=spec.created,
                    aliases=list(spec.aliases),
                    context_length=(
                        cast(LocalModel, slot.model).context_size
                        if slot is not None
                        else expected_context(spec)
                    ),
                    loaded=slot is not None,
                    details=details,
                )
            )
            for adapter, facts in zip(spec.adapters, adapters, strict=True):
                variant = {k: v for k, v in details.items() if k not in {"adapters", "memory_bytes"}}
                # The adapter's own memory: the base model's is counted once, on its own row.
                variant |= {"base_model": spec.id, "adapter": facts, "memory_bytes": facts["memory_bytes"]}
                out.append(
                    ModelInfo(
                        id=adapter.id,
                        created=spec.created,
                        context_length=spec.engine.context_size,
                        loaded=bool(facts["loaded"]),
                        details=variant,
                    )
                )
        return out

    def set_keep_alive(self, model_id: str, seconds: float) -> None:
        self.manager.set_keep_alive(self._resolve(model_id)[0], seconds)

    async def unload_when_idle(self, model_id: str) -> None:
        await self.manager.unload_when_idle(self._resolve(model_id)[0])

    async def load(self, model_id: str) -> None:
        base, adapter = self._resolve(model_id)
        loaded = await self.get(base)
        if adapter is not None:
            await asyncio.to_thread(loaded.lora, adapter)

    async def get(self, model_id: str) -> LocalModel:
        """Load a model (if needed) without holding it: for preloading at start-up."""
        async with self.manager.lease(model_id) as model:
            return cast(LocalModel, model)

    @asynccontextmanager
    async def _using(self, model_id: str) -> AsyncIterator[LocalModel]:
        async with self.manager.lease(self._resolve(model_id)[0]) as model:
            yield cast(LocalModel, model)

    async def stream(self, request: ChatRequest | CompletionRequest) -> AsyncGenerator[Chunk, None]:
        adapter = self._resolve(request.model)[1]
        async with self._using(request.model) as model, aclosing(model.stream(request, adapter)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def count_tokens(self, request: ChatRequest | CompletionRequest) -> int:
        async with self._using(request.model) as loaded:
            tokens, _ = await asyncio.to_thread(loaded.prompt_tokens, request)
            return len(tokens)

    async def embed(self, model: str, inputs: EmbeddingInputs) -> Embeddings:
        if self._resolve(model)[1] is not None:  # the embedding context has no adapters: never silently
            raise InvalidRequest(
                f"The model `{model}` is a LoRA adapter; adapters apply to text generation only, "
                "not to embeddings.",
                param="model",
            )
        async with self._using(model) as loaded:
            return await loaded.embed(inputs)

    async def health(self) -> bool:
        return True

    def close(self) -> None:
        self.manager.close()


def _adapter_facts(adapter: AdapterSpec, model: LocalModel | None) -> dict[str, Any]:
    """An adapter as /v1/models and `lumbung ps` show it: its names, scale, store facts and memory."""
    loaded = model.adapters.get(adapter.name) if model is not None else None
    return {
        "name": adapter.name,
        "id": adapter.id,
        "scale": adapter.scale,
        **adapter.details,
        "loaded": loaded is not None,
        "memory_bytes": loaded.size_bytes if loaded is not None else None,
    }


def _speculative_facts(model: LocalModel) -> dict[str, Any] | None:
    """Speculation as /v1/models and `lumbung ps` show it (None: off and never used)."""
    stats = model.engine.stats().speculation
    if stats is None:
        return None
    spec = model.engine.speculative
    return {
        "mode": spec.mode if spec else "per request",
        "max_draft": spec.max_draft if spec else None,
        "ngram": spec.ngram if spec else None,
        "steps": stats.steps,
        "draft_tokens": stats.drafted,
        "accepted_tokens": stats.accepted,
        "acceptance_rate": stats.acceptance,
    }
