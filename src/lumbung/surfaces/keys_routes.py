"""``/admin/keys``: virtual keys over HTTP, as ``lumbung keys`` does them on the data directory.
Operator keys only; errors in OpenAI's envelope.

    GET    /admin/keys                  every key (revoked and expired ones too), never a secret
    POST   /admin/keys                  make one: 201 with the key and its secret (``key``), shown once
    GET    /admin/keys/{id or name}     one key
    DELETE /admin/keys/{id or name}     revoke it (the answer is the key, ``state: revoked``)
    POST   /admin/keys/{id or name}/rotate   a new secret, shown once; the old one stops working

A change made here takes effect on this server's next request; other servers sharing the database
see it within a second (accounts/virtual.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lumbung.accounts.policy import KeyPolicy
from lumbung.accounts.store import KeyStore, parse_expires
from lumbung.accounts.virtual import VirtualKeys
from lumbung.errors import NotFound
from lumbung.surfaces import openai as oai
from lumbung.surfaces.common import RequestLog, endpoint, read_body, state_of

admin = endpoint(oai.error_body, admin=True)


class KeyIn(BaseModel):
    """The body of ``POST /admin/keys``: ``lumbung keys create``'s options."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    routes: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    egress: list[str] = Field(default_factory=list)
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None
    budget: float | int | None = None
    period: Literal["day", "month"] | None = None
    expires: str | None = None  # 30d, 12h, or an ISO date/time
    record: float | int | None = None


def _view(request: Request) -> VirtualKeys:
    view = state_of(request).virtual_keys
    if view is None:
        raise NotFound("This server keeps no virtual keys.")
    return view


async def _store(request: Request) -> KeyStore:
    return await _view(request).store()


@admin
async def list_keys(request: Request, entry: RequestLog) -> Response:
    now = datetime.now(UTC)
    keys = await (await _store(request)).all()
    return JSONResponse({"object": "list", "data": [k.to_json(now) for k in keys]})


@admin
async def create_key(request: Request, entry: RequestLog) -> Response:
    try:
        wire = KeyIn.model_validate_json(await read_body(request))
    except ValidationError as exc:
        raise oai.validation_error(exc) from exc
    policy = KeyPolicy(
        id="",
        name=wire.name,
        routes=tuple(wire.routes),
        models=tuple(wire.models),
        egress=tuple(wire.egress),
        rpm=wire.rpm,
        tpm=wire.tpm,
        max_concurrent=wire.max_concurrent,
        budget=None if wire.budget is None else float(wire.budget),
        period=wire.period,
        expires=parse_expires(wire.expires, datetime.now(UTC)) if wire.expires else None,
        record=None if wire.record is None else float(wire.record),
    )
    key, secret = await (await _store(request)).create(policy)
    _view(request).changed()
    return JSONResponse({**key.to_json(), "key": secret}, status_code=201)


@admin
async def get_key(request: Request, entry: RequestLog) -> Response:
    key = await (await _store(request)).get(request.path_params["key"])
    return JSONResponse(key.to_json())


@admin
async def revoke_key(request: Request, entry: RequestLog) -> Response:
    key = await (await _store(request)).revoke(request.path_params["key"])
    _view(request).changed()
    return JSONResponse(key.to_json())


@admin
async def rotate_key(request: Request, entry: RequestLog) -> Response:
    key, secret = await (await _store(request)).rotate(request.path_params["key"])
    _view(request).changed()
    return JSONResponse({**key.to_json(), "key": secret})


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/keys", list_keys, methods=["GET"]),
        Route("/admin/keys", create_key, methods=["POST"]),
        Route("/admin/keys/{key}/rotate", rotate_key, methods=["POST"]),
        Route("/admin/keys/{key}", get_key, methods=["GET"]),
        Route("/admin/keys/{key}", revoke_key, methods=["DELETE"]),
    ]
