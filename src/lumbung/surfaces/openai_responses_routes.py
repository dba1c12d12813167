"""HTTP routes of OpenAI's Responses API: create (streaming or not), retrieve, delete, input items.

Stored responses live in the database under the data directory (``lumbung/state``), opened on first
use and closed at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lumbung.errors import ApiError, InvalidRequest, NotFound
from lumbung.state.db import Database
from lumbung.state.responses import ResponseStore
from lumbung.surfaces import openai as oai
from lumbung.surfaces import openai_responses as orr
from lumbung.surfaces.common import (
    RequestLog,
    caller_of,
    endpoint,
    read_body,
    sse_event,
    sse_response,
    state_of,
    unless_disconnected,
)
from lumbung.surfaces.keepalive import SSE_KEEPALIVE, Framing, keep_alive_of, start
from lumbung.surfaces.openai_responses_stream import ResponseEventWriter
from lumbung.surfaces.openai_responses_tools import in_wire_terms
from lumbung.surfaces.relay import interleave, relay
from lumbung.types import Chunk, Message

log = logging.getLogger(__name__)
openai_endpoint = endpoint(oai.error_body)
_opening = asyncio.Lock()


async def store_of(request: Request) -> ResponseStore:
    app_state = request.app.state
    store: ResponseStore | None = getattr(app_state, "responses", None)
    if store is None:
        async with _opening:
            store = getattr(app_state, "responses", None)
            if store is None:
                state = state_of(request)
                db = await Database.under(state.settings.home).open()
                state.closers.append(db.close)
                store = ResponseStore(db)
                app_state.responses = store
    return store


async def _history(request: Request, call: orr.ResponsesCall) -> list[Message]:
    previous = call.wire.previous_response_id
    if previous is None:
        return []
    stored = await (await store_of(request)).get(previous, caller_of(request))
    if stored is None:  # another key's response is not found either
        raise InvalidRequest(
            f"Previous response with id '{previous}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return stored.conversation


_saving: set[asyncio.Task[None]] = set()  # saves under way (the loop keeps only weak references)


async def _save(store: ResponseStore, response_id: str, *args: Any) -> None:
    """Store a response; not cut short by a client that hangs up meanwhile (a save cancelled midway
    leaves the database connection half closed: SQLAlchemy and aiosqlite log errors)."""

    async def save() -> None:
        try:
            await store.save(*args)
        except Exception:  # the client has (or gets) the whole answer; only the stored copy is missing
            log.exception("response %s could not be stored", response_id)

    task = asyncio.ensure_future(save())
    _saving.add(task)
    task.add_done_callback(_saving.discard)
    await asyncio.shield(task)


@openai_endpoint
async def create(request: Request, entry: RequestLog) -> Response:
    state = state_of(request)
    body = await read_body(request)
    call = orr.parse_create(body)
    state.note_extra_fields("openai.responses", call.extra_fields)
    try:
        return await _answer(request, entry, call)
    except ApiError as exc:
        in_wire_terms(exc, call.tools)
        raise


async def _answer(request: Request, entry: RequestLog, call: orr.ResponsesCall) -> Response:
    state = state_of(request)
    model = state.gateway.resolve(call.request.model).model
    entry.model = model
    history = await _history(request, call)
    chat = call.with_history(history)
    caller = caller_of(request)
    if not call.stream:  # a whole answer: the gateway may fail over at any point before it is done
        done = await unless_disconnected(request, state.gateway.complete(chat))
        entry.prompt_tokens = done.usage.prompt_tokens
        entry.completion_tokens = done.usage.completion_tokens
        status, reason = orr.status_of(done.finish_reason)
        answer = orr.response_body(
            call,
            model,
            status=status,
            output=orr.output_items(done, call.logprobs, call.tools),
            usage=done.usage,
            incomplete=reason,
        )
        if call.store:
            conversation = orr.conversation_after(call, history, done)
            await _save(await store_of(request), call.id, answer, call.input_items, conversation, caller)
        return JSONResponse(answer)
    store = await store_of(request) if call.store else None
    stream = state.gateway.stream(chat)
    writer = ResponseEventWriter(call, model)
    last: list[tuple[str, dict[str, Any]]] = []  # the closing event, held until the response is stored

    def render(index: int, chunk: Chunk) -> list[bytes]:
        events = writer.events(chunk)
        if store is not None and chunk.finish_reason is not None:
            last[:] = events[-1:]
            events = events[:-1]
        return [sse_event(name, data) for name, data in events]

    def fail(exc: ApiError) -> bytes:
        in_wire_terms(exc, call.tools)
        return b"".join(sse_event(name, data) for name, data in writer.failed(exc))

    def opening() -> list[bytes]:
        return [sse_event(n, d) for n, d in writer.start()]

    async def early() -> list[bytes]:
        return opening()  # response.created and response.in_progress, then SSE comments

    async def events(firsts: list[Chunk], started: bool) -> AsyncIterator[bytes]:
        head = [] if started else opening()
        async for piece in relay(interleave([stream], firsts), render, fail, entry, head=head):
            yield piece
        if store is not None and last:
            # Stored before the client hears it is done, so a previous_response_id sent right
            # after finds it.
            conversation = orr.conversation_after(call, history, writer.completion())
            await _save(store, call.id, writer.final_body(), call.input_items, conversation, caller)
            yield sse_event(*last[0])

    async def rest(firsts: list[Chunk], started: bool) -> AsyncIterator[bytes]:
        return events(firsts, started)

    framing = Framing(rest, fail, beat=lambda: SSE_KEEPALIVE, early=early)
    return sse_response(await start(request, [stream], keep_alive_of(state), framing, entry))


@openai_endpoint
async def retrieve(request: Request, entry: RequestLog) -> Response:
    stored = await (await store_of(request)).get(request.path_params["response_id"], caller_of(request))
    if stored is None:
        raise NotFound(f"Response with id '{request.path_params['response_id']}' not found.")
    return JSONResponse(stored.body)


@openai_endpoint
async def remove(request: Request, entry: RequestLog) -> Response:
    response_id = request.path_params["response_id"]
    if not await (await store_of(request)).delete(response_id, caller_of(request)):
        raise NotFound(f"Response with id '{response_id}' not found.")
    return JSONResponse(orr.deleted_body(response_id))


@openai_endpoint
async def input_items(request: Request, entry: RequestLog) -> Response:
    stored = await (await store_of(request)).get(request.path_params["response_id"], caller_of(request))
    if stored is None:
        raise NotFound(f"Response with id '{request.path_params['response_id']}' not found.")
    return JSONResponse(orr.input_items_body(stored.input_items))


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/responses", create, methods=["POST"]),
        Route("/v1/responses/{response_id}", retrieve, methods=["GET"]),
        Route("/v1/responses/{response_id}", remove, methods=["DELETE"]),
        Route("/v1/responses/{response_id}/input_items", input_items, methods=["GET"]),
    ]
