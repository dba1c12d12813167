"""Assembles the running server from settings: backends -> gateway -> ASGI app."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path

from starlette.applications import Starlette

from lumbung.config import ModelConfig
from lumbung.engines.llamacpp.backend import AdapterSpec, LlamaCppBackend, LocalModelSpec
from lumbung.engines.llamacpp.engine import EngineConfig
from lumbung.errors import ConfigError, ModelNotInStore
from lumbung.gateway.build import build_gateway
from lumbung.record import SINK_DELAY
from lumbung.settings import DEFAULT_MODEL_ALIASES, Settings
from lumbung.store import embedded_minilm
from lumbung.store import serving as stored
from lumbung.store.embedded import GEMMA, SMOLLM2, embedded_model_path
from lumbung.store.offline import apply_offline
from lumbung.store.serving import (
    StoreService,
    check_configured_files,
    checked_adapter,
    checked_gguf,
    config_manifest,
    stored_adapter_path,
    stored_model_path,
)
from lumbung.store.store import ModelStore
from lumbung.surfaces.http import create_app

log = logging.getLogger(__name__)


def engine_config(
    settings: Settings, model: ModelConfig | None = None, store: ModelStore | None = None
) -> EngineConfig:
    speculative = model.speculative if model and model.speculative else settings.speculative
    draft = None
    if speculative is not None and speculative.mode == "draft" and speculative.model:
        draft = stored.draft_model_path(settings.home, store or ModelStore(settings.home), speculative.model)
    return EngineConfig(
        context_size=(model.context_size if model and model.context_size else settings.context_size),
        rope_scaling=model.rope_scaling if model else None,
        memory_budget=settings.memory_budget_mb * 2**20,
        parallel=(model.parallel if model and model.parallel else settings.parallel),
        batch_size=settings.batch_size,
        threads=settings.threads,
        amx=settings.amx,
        max_queue=(model.max_queue if model and model.max_queue is not None else settings.max_queue),
        cache_mb=(
            model.prefix_cache_mb if model and model.prefix_cache_mb is not None else settings.prefix_cache_mb
        ),
        kv_type=(model.kv_cache_type if model and model.kv_cache_type else settings.kv_cache_type),
        fast_forward=settings.structured_fast_forward,
        deterministic=(
            model.deterministic if model and model.deterministic is not None else settings.deterministic
        ),
        persist_dir=settings.home / "cache" / "prefix",
        persist_mb=settings.prefix_cache_persist_mb,
        speculative=speculative,
        draft_model=draft,
    )


def local_specs(settings: Settings, store: ModelStore | None = None) -> list[LocalModelSpec]:
    """The embedded default, the configured models, then every other GGUF model in the store."""
    store = store or ModelStore(settings.home)
    specs = configured_specs(settings, store)
    return specs + store_specs(settings, store, names_of(specs))


def names_of(specs: list[LocalModelSpec]) -> set[str]:
    return {name for spec in specs for name in (spec.id, *spec.aliases)}


def configured_specs(settings: Settings, store: ModelStore) -> list[LocalModelSpec]:
    specs = embedded_specs(settings, store) if settings.serve_default_model else []
    for model in settings.models:
        path: Callable[[], Path]
        manifest = None
        if model.ref is not None:
            manifest = config_manifest(store, model)
            path = partial(stored_model_path, store, manifest.reference)
        elif model.path is not None:
            path = partial(checked_gguf, model.path.expanduser())
        else:
            raise ConfigError(f"model {model.id!r}: set `path` to a GGUF file or `ref` to a stored model")
        specs.append(
            LocalModelSpec(
                id=model.id,
                path=path,
                aliases=list(model.aliases),
                chat_template=model.chat_template,
                tool_format=model.tool_format,
                engine=engine_config(settings, model, store),
                keep_alive=settings.keep_alive if model.keep_alive is None else model.keep_alive,
                embedding=model.embedding or bool(manifest and manifest.gguf and manifest.gguf.embedding),
                details=stored.details(manifest),
                created=stored.created(manifest),
                adapters=adapter_specs(store, model),
            )
        )
    return specs


def adapter_specs(store: ModelStore, model: ModelConfig) -> list[AdapterSpec]:
    out = []
    for adapter in model.adapters:
        path: Callable[[], Path]
        facts = {}
        if adapter.ref is not None:
            try:
                manifest = store.find(adapter.ref)
            except ModelNotInStore as exc:
                raise ConfigError(
                    f"model {model.id!r}: adapter {adapter.ref!r} is not in the store; "
                    f"run `lumbung pull {adapter.ref}` first"
                ) from exc
            path = partial(stored_adapter_path, store, manifest.reference)
            facts = {k: v for k, v in stored.details(manifest).items() if k in ADAPTER_FACTS}
        else:
            assert adapter.path is not None
            path = partial(checked_adapter, adapter.path.expanduser(), adapter.sha256)
        out.append(AdapterSpec(adapter.name, model.adapter_id(adapter), path, adapter.scale, facts))
    return out


ADAPTER_FACTS = {"reference", "license", "digest", "size_bytes"}


def embedded_specs(settings: Settings, store: ModelStore) -> list[LocalModelSpec]:
    """The default model (kept loaded), Gemma 3 270M beside it, and the all-MiniLM-L6-v2 embedding model
    where its package is installed (both loaded on first use)."""
    specs = []
    for model, aliases, keep_alive in (
        (SMOLLM2, DEFAULT_MODEL_ALIASES, -1.0),
        (GEMMA, [], settings.keep_alive),
    ):
        manifest = store.find_by_reference(model.entry.reference)  # None until first assembled
        specs.append(
            LocalModelSpec(
                id=model.entry.name,
                path=partial(embedded_model_path, settings.home, model),
                aliases=list(aliases),
                engine=engine_config(settings),
                keep_alive=keep_alive,
                details=stored.details(manifest),
                created=stored.created(manifest),
            )
        )
    if embedded_minilm.installed():  # the embedding model replay compares answers with
        manifest = store.find_by_reference(embedded_minilm.REFERENCE)
        specs.append(
            LocalModelSpec(
                id=embedded_minilm.NAME,
                path=partial(embedded_minilm.model_path, settings.home),
                engine=engine_config(settings),
                keep_alive=settings.keep_alive,
                embedding=True,
                details=stored.details(manifest),
                created=stored.created(manifest),
            )
        )
    return specs


def store_specs(settings: Settings, store: ModelStore, taken: set[str]) -> list[LocalModelSpec]:
    return [
        LocalModelSpec(
            id=manifest.name,
            path=partial(stored_model_path, store, manifest.reference),
            aliases=aliases,
            engine=engine_config(settings),
            keep_alive=settings.keep_alive,
            embedding=bool(manifest.gguf and manifest.gguf.embedding),
            details=stored.details(manifest),
            created=stored.created(manifest),
        )
        for manifest, aliases in stored.served_manifests(settings, store, set(taken))
    ]


def check_exposure(settings: Settings) -> None:
    if (
        not settings.is_loopback
        and not (settings.api_keys or settings.admin_api_keys)
        and not settings.allow_no_auth
    ):
        raise ConfigError(
            f"refusing to serve on {settings.host} with no API key: anyone who can reach this address "
            "could use it. Set LUMBUNG_API_KEYS (or api_keys in the config), bind 127.0.0.1, "
            "or pass --allow-no-auth if the network is trusted."
        )


def build_local(settings: Settings, store: ModelStore) -> tuple[LlamaCppBackend, list[LocalModelSpec]]:
    """The in-process backend over every local model, and the configured ones among them."""
    fixed = configured_specs(settings, store)
    specs = fixed + store_specs(settings, store, names_of(fixed))
    local = LlamaCppBackend(
        specs, request_timeout=settings.request_timeout, memory_budget=settings.memory_budget_mb * 2**20
    )
    return local, fixed


def build_app(settings: Settings) -> Starlette:
    check_exposure(settings)
    apply_offline(settings)
    store = ModelStore(settings.home)
    check_configured_files(settings, store)
    local, fixed = build_local(settings, store)
    specs = list(local.specs.values())
    gateway = build_gateway(settings, local)
    from_store = {spec.id for spec in specs[len(fixed) :]}

    def store_changed() -> None:
        """A pull or delete while serving: the store's models join or leave the served list.
        A deleted model that is loaded keeps its memory until shutdown; it is no longer reachable."""
        fresh = store_specs(settings, store, names_of(fixed))
        for model_id in from_store - {spec.id for spec in fresh}:
            local.specs.pop(model_id, None)
        for spec in fresh:
            local.specs[spec.id] = spec
        from_store.clear()
        from_store.update(spec.id for spec in fresh)
        gateway.refresh()

    async def preload() -> None:
        """The default model (the embedded one, else the first configured) loads at start-up."""
        if specs:
            await local.get(specs[0].id)

    app = create_app(settings, gateway, preload=preload, on_shutdown=local.close, sink_delay=SINK_DELAY)
    app.state.store = StoreService(settings, on_change=store_changed)
    return app
