"""Name resolution: a public model name (id or alias) -> the backend and model id that serve it."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace

from lumbung.engines.base import Backend, Embeddings
from lumbung.errors import ConfigError, ModelNotFound
from lumbung.types import ChatRequest, Chunk, CompletionRequest, ModelInfo


@dataclass(frozen=True, slots=True)
class Target:
    backend: Backend
    model: str


class Gateway:
    """Routes requests to backends by model name. Every surface talks to backends only through here."""

    def __init__(self, backends: list[Backend]) -> None:
        self.backends = backends
        self._names: dict[str, Target] = {}
        for backend in backends:
            for info in backend.models():
                for name in (info.id, *info.aliases):
                    if name in self._names:
                        raise ConfigError(f"model name {name!r} is used twice")
                    self._names[name] = Target(backend, info.id)

    def resolve(self, name: str) -> Target:
        target = self._names.get(name)
        if target is None:
            raise ModelNotFound(
                f"The model `{name}` does not exist or you do not have access to it.", param="model"
            )
        return target

    def models(self) -> list[ModelInfo]:
        return [info for backend in self.backends for info in backend.models()]

    def model(self, name: str) -> ModelInfo:
        target = self.resolve(name)
        for info in target.backend.models():
            if info.id == target.model:
                return info
        raise ModelNotFound(f"The model `{name}` does not exist.", param="model")

    def stream(self, request: ChatRequest | CompletionRequest) -> AsyncGenerator[Chunk, None]:
        target = self.resolve(request.model)
        return target.backend.stream(replace(request, model=target.model))

    async def embed(self, name: str, inputs: list[str]) -> Embeddings:
        target = self.resolve(name)
        return await target.backend.embed(target.model, inputs)

    async def tokenize(self, name: str, text: str) -> list[int]:
        target = self.resolve(name)
        return await target.backend.tokenize(target.model, text)

    async def count_tokens(self, request: ChatRequest | CompletionRequest) -> int:
        target = self.resolve(request.model)
        return await target.backend.count_tokens(replace(request, model=target.model))
