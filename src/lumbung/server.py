"""Assembles the running server from settings: backends -> gateway -> ASGI app."""

from __future__ import annotations

import logging

from starlette.applications import Starlette

from lumbung.engines.llamacpp.backend import LlamaCppBackend, LocalModelSpec
from lumbung.engines.llamacpp.engine import EngineConfig
from lumbung.errors import ConfigError
from lumbung.gateway.build import build_gateway
from lumbung.settings import DEFAULT_MODEL_ALIASES, DEFAULT_MODEL_ID, ModelConfig, Settings
from lumbung.store.embedded import embedded_model_path
from lumbung.surfaces.http import create_app

log = logging.getLogger(__name__)


def engine_config(settings: Settings, model: ModelConfig | None = None) -> EngineConfig:
    return EngineConfig(
        context_size=(model.context_size if model and model.context_size else settings.context_size),
        parallel=(model.parallel if model and model.parallel else settings.parallel),
        batch_size=settings.batch_size,
        threads=settings.threads,
        max_queue=settings.max_queue,
    )


def local_specs(settings: Settings) -> list[LocalModelSpec]:
    specs = []
    if settings.serve_default_model:
        specs.append(
            LocalModelSpec(
                id=DEFAULT_MODEL_ID,
                path=lambda: embedded_model_path(settings.home),
                aliases=list(DEFAULT_MODEL_ALIASES),
                engine=engine_config(settings),
                keep_alive=-1,
            )
        )
    for model in settings.models:
        if model.path is None:
            raise ConfigError(f"model {model.id!r}: set `path` to a GGUF file")
        specs.append(
            LocalModelSpec(
                id=model.id,
                path=model.path.expanduser(),
                aliases=list(model.aliases),
                chat_template=model.chat_template,
                engine=engine_config(settings, model),
                keep_alive=settings.keep_alive if model.keep_alive is None else model.keep_alive,
                embedding=model.embedding,
            )
        )
    return specs


def check_exposure(settings: Settings) -> None:
    if not settings.is_loopback and not settings.api_keys and not settings.allow_no_auth:
        raise ConfigError(
            f"refusing to serve on {settings.host} with no API key: anyone who can reach this address "
            "could use it. Set LUMBUNG_API_KEYS (or api_keys in the config), bind 127.0.0.1, "
            "or pass --allow-no-auth if the network is trusted."
        )


def build_app(settings: Settings) -> Starlette:
    check_exposure(settings)
    specs = local_specs(settings)
    local = LlamaCppBackend(specs, request_timeout=settings.request_timeout)
    gateway = build_gateway(settings, local)

    async def preload() -> None:
        """The default model (the embedded one, else the first configured) loads at start-up."""
        if specs:
            await local.get(specs[0].id)

    return create_app(settings, gateway, preload=preload, on_shutdown=local.close)
