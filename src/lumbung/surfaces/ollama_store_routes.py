"""Ollama's store endpoints: ``POST /api/pull`` (NDJSON progress) and ``DELETE /api/delete``.

Errors use Ollama's envelope ``{"error": "..."}``: before the stream starts as an HTTP error, after
it as a last ``{"error": ...}`` line (what Ollama's clients raise on). The rest of the Ollama API
(/api/tags, /api/show, chat, generate) lives in its own surface and reads the store through
``lumbung.store.describe.model_details``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from lumbung import errors
from lumbung.store.pull import Progress
from lumbung.store.serving import StoreService
from lumbung.surfaces.common import RequestLog, endpoint, read_body

log = logging.getLogger(__name__)
PROGRESS_INTERVAL = 0.25  # seconds between progress lines of one file (the last one always goes out)


def error_body(exc: errors.ApiError) -> dict[str, Any]:
    return {"error": exc.message}


# Changing the store is an operator's action: operator keys only, when keys are configured.
ollama_endpoint = endpoint(error_body, admin=True)


class PullBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    name: str | None = None  # the field's older spelling, still sent by some clients
    stream: bool = True
    insecure: bool = False


class DeleteBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = Field(default=None)
    name: str | None = None


def as_api_error(exc: errors.StoreError) -> errors.ApiError:
    """Store failures in HTTP terms: bad input 400, unknown model 404, a hub's failure 502."""
    if isinstance(exc, errors.BadReference | errors.UnsafeFile):
        return errors.InvalidRequest(str(exc), param="model")
    if isinstance(exc, errors.ModelNotInStore):
        return errors.NotFound(str(exc), param="model")
    if isinstance(exc, errors.OfflineError):
        return errors.ApiError(str(exc), status=503, code="offline")
    if isinstance(exc, errors.HubError | errors.IntegrityError | errors.InvalidModelFile):
        return errors.UpstreamError(str(exc))
    return errors.InternalError(str(exc))


def _service(request: Request) -> StoreService:
    service: StoreService = request.app.state.store
    return service


def _parse(raw: bytes, model: type[PullBody] | type[DeleteBody]) -> tuple[str, PullBody | DeleteBody]:
    try:
        body = model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise errors.InvalidRequest(f"invalid request body: {exc.errors()[0]['msg']}") from exc
    name = body.model or body.name
    if not name:
        raise errors.InvalidRequest("missing field: model", param="model")
    return name, body


def _line(body: dict[str, Any]) -> bytes:
    return (json.dumps(body, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def _event(p: Progress) -> dict[str, Any]:
    if p.file is None:
        return {"status": p.status}
    # Ollama names a layer by the first 12 hex digits of its digest.
    status = f"pulling {p.digest[7:19]}" if p.digest else p.status
    out: dict[str, Any] = {"status": status, "total": p.total, "completed": p.completed}
    if p.digest:
        out["digest"] = p.digest
    return out


@ollama_endpoint
async def pull(request: Request, entry: RequestLog) -> Response:
    name, body = _parse(await read_body(request), PullBody)
    assert isinstance(body, PullBody)
    entry.model = name
    service = _service(request)
    if not body.stream:
        try:
            await service.pull(name, lambda p: None)
        except errors.StoreError as exc:
            raise as_api_error(exc) from exc
        return JSONResponse({"status": "success"})

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Progress | BaseException | None] = asyncio.Queue()
    last: dict[str, float] = {}

    def report(p: Progress) -> None:  # called on the pull's worker thread
        now = time.monotonic()
        if (
            p.file is not None
            and p.completed != p.total
            and now - last.get(p.status, 0.0) < PROGRESS_INTERVAL
        ):
            return
        last[p.status] = now
        loop.call_soon_threadsafe(
            queue.put_nowait, Progress(p.status, p.file, p.digest, p.total, p.completed)
        )

    async def run() -> None:
        try:
            await service.pull(name, report)
            queue.put_nowait(None)
        except errors.StoreError as exc:
            queue.put_nowait(exc)
        except Exception as exc:  # a bug: logged here, reported in-band
            log.exception("pull of %r failed", name)
            queue.put_nowait(exc)

    # The pull goes on if the client leaves: the file is kept whole, and a later pull finds it.
    task = asyncio.create_task(run())
    first = await queue.get()  # errors before any progress are plain HTTP errors
    if isinstance(first, errors.StoreError):
        raise as_api_error(first) from first
    if isinstance(first, BaseException):
        raise first

    async def lines() -> AsyncIterator[bytes]:
        item: Progress | BaseException | None = first
        while True:
            if item is None:
                break
            if isinstance(item, BaseException):
                entry.error = type(item).__name__
                message = str(item) if isinstance(item, errors.StoreError) else "internal error"
                yield _line({"error": message})
                break
            yield _line(_event(item))
            item = await queue.get()
        await task
        entry.finish()

    entry.stream = True
    return StreamingResponse(lines(), media_type="application/x-ndjson")


@ollama_endpoint
async def delete(request: Request, entry: RequestLog) -> Response:
    name, _ = _parse(await read_body(request), DeleteBody)
    entry.model = name
    try:
        await _service(request).delete(name)
    except errors.ModelNotInStore as exc:
        raise errors.NotFound(f"model '{name}' not found", param="model") from exc
    except errors.StoreError as exc:
        raise as_api_error(exc) from exc
    return Response(status_code=200)


def routes() -> list[BaseRoute]:
    return [
        Route("/api/pull", pull, methods=["POST"]),
        Route("/api/delete", delete, methods=["DELETE"]),
    ]
