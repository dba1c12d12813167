"""Where `lumbung run` sends a conversation: a running server over HTTP, or the gateway in this process.

Both yield core ``Chunk``s, so the terminal side (cli_run.py) does not know which one answers. The
in-process one is the gateway ``lumbung serve`` builds (server.py), called directly: no HTTP.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator
from typing import Any, Protocol

import httpx

from lumbung.errors import ApiError, LumbungError
from lumbung.settings import Settings
from lumbung.types import ChatRequest, Chunk, Message, SamplingParams, Usage

HEALTH_WAIT = 300.0  # seconds a server that is still loading its model is waited for


class Chat(Protocol):
    """What answers `lumbung run`'s turns."""

    where: str  # said in the banner and in --verbose

    async def check(self, model: str) -> float:
        """Make sure the model exists and is loaded; the seconds that took."""
        ...

    def stream(self, model: str, messages: list[Message], sampling: SamplingParams) -> AsyncGenerator[Chunk]:
        """The answer, chunk by chunk; the last carries the usage."""
        ...

    async def aclose(self) -> None: ...


def server_state(base_url: str, timeout: float = 2.0) -> str | None:
    """ "ok" or "loading" when a lumbung server answers at ``base_url``, None when nothing listens."""
    try:
        response = httpx.get(base_url.rstrip("/") + "/health", timeout=timeout)
    except httpx.HTTPError:
        return None
    if response.status_code == 200:
        return "ok"
    try:
        body = response.json()
    except ValueError:
        body = {}
    if isinstance(body, dict) and body.get("status") == "error":
        raise LumbungError(f"the server at {base_url} failed to start: {body.get('error')}")
    return "loading" if response.status_code == 503 else "ok"


def wait_until_ready(base_url: str, deadline: float) -> None:
    while server_state(base_url) == "loading":
        if time.monotonic() > deadline:
            raise LumbungError(f"the server at {base_url} is still loading its model")
        time.sleep(0.25)


def _error_of(status: int, body: bytes) -> ApiError:
    message = body.decode("utf-8", "replace")[:500]
    code = None
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        err = parsed.get("error")
        if isinstance(err, dict):  # OpenAI's envelope
            message, code = str(err.get("message", message)), err.get("code")
        elif isinstance(err, str):
            message = err
    return ApiError(message, status=status, code=code if isinstance(code, str) else None)


def wire_messages(messages: list[Message]) -> list[dict[str, Any]]:
    return [{"role": m.role, "content": m.content or ""} for m in messages]


def wire_sampling(sampling: SamplingParams) -> dict[str, Any]:
    """The options `lumbung run` sets, as OpenAI's fields (only those changed from the default)."""
    body: dict[str, Any] = {}
    default = SamplingParams()
    for name in ("temperature", "top_p", "seed", "max_tokens"):
        value = getattr(sampling, name)
        if value != getattr(default, name):
            body[name] = value
    return body


class RemoteChat:
    """A lumbung server (or any OpenAI-compatible one) over its /v1 API."""

    def __init__(self, base_url: str, api_key: str | None, client: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.where = self.base_url
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client or httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(600, connect=10))

    async def check(self, model: str) -> float:
        started = time.monotonic()
        response = await self.client.get(f"{self.base_url}/v1/models/{model}")
        if response.status_code != 200:
            raise _error_of(response.status_code, response.content)
        # Ollama's way to load a model without generating: an empty generate request.
        loaded = await self.client.post(f"{self.base_url}/api/generate", json={"model": model})
        if loaded.status_code != 200:
            raise _error_of(loaded.status_code, loaded.content)
        return time.monotonic() - started

    async def stream(
        self, model: str, messages: list[Message], sampling: SamplingParams
    ) -> AsyncGenerator[Chunk]:
        body = {
            "model": model,
            "messages": wire_messages(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
            **wire_sampling(sampling),
        }
        async with self.client.stream("POST", f"{self.base_url}/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                raise _error_of(response.status_code, await response.aread())
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                event = json.loads(data)
                if "error" in event:  # an error after the answer started travels inside the stream
                    raise _error_of(500, data.encode())
                for choice in event.get("choices") or []:
                    delta = choice.get("delta") or {}
                    yield Chunk(
                        text=delta.get("content") or "",
                        reasoning=delta.get("reasoning_content") or "",
                        finish_reason=choice.get("finish_reason"),
                    )
                usage = event.get("usage")
                if usage:
                    details = usage.get("prompt_tokens_details") or {}
                    yield Chunk(
                        usage=Usage(
                            usage.get("prompt_tokens", 0),
                            usage.get("completion_tokens", 0),
                            details.get("cached_tokens") or 0,
                        )
                    )

    async def aclose(self) -> None:
        await self.client.aclose()


class LocalChat:
    """The gateway `lumbung serve` would build, in this process: local models load here."""

    where = "this process"

    def __init__(self, settings: Settings) -> None:
        from lumbung.gateway.build import build_gateway
        from lumbung.server import build_local
        from lumbung.store.offline import apply_offline
        from lumbung.store.store import ModelStore

        apply_offline(settings)
        self.local, _ = build_local(settings, ModelStore(settings.home))
        self.gateway = build_gateway(settings, self.local)

    async def check(self, model: str) -> float:
        started = time.monotonic()
        self.gateway.model(model)  # ModelNotFound, with the name
        await self.gateway.load(model)
        return time.monotonic() - started

    def stream(self, model: str, messages: list[Message], sampling: SamplingParams) -> AsyncGenerator[Chunk]:
        return self.gateway.stream(ChatRequest(model=model, messages=list(messages), sampling=sampling))

    async def aclose(self) -> None:
        await self.gateway.aclose()
        await asyncio.to_thread(self.local.close)
