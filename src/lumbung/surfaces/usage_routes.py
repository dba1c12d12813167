"""``GET /admin/usage?by=key|route|model|provider|surface|outcome&since=7d``: the usage ledger's
summary (accounts/usage.py), as ``lumbung usage --json`` prints it. Operator keys only."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lumbung.accounts.usage import BY, parse_since, summarize, total
from lumbung.errors import InvalidRequest, NotFound
from lumbung.surfaces import openai as oai
from lumbung.surfaces.common import RequestLog, endpoint, state_of


@endpoint(oai.error_body, admin=True)
async def usage(request: Request, entry: RequestLog) -> Response:
    state = state_of(request)
    ledger = state.ledger
    if ledger is None:
        raise NotFound("The usage ledger is off (usage_ledger: false).")
    by = request.query_params.get("by", "key")
    if by not in BY:
        raise InvalidRequest(f"by: must be one of {', '.join(BY)}", param="by")
    since = parse_since(request.query_params.get("since"))
    # This server's latest requests included (their records closed now, record.Outbox); shielded: a
    # client leaving mid-write must not cancel a commit (its rows would be queued again and written twice).
    state.outbox.drain()
    await asyncio.shield(ledger.flush())
    lines = await summarize(ledger.db, by, since)
    return JSONResponse(
        {
            "by": by,
            "since": since,
            "currency": state.settings.prices.currency,
            "groups": [line.as_json() for line in lines],
            "total": total(lines).as_json(),
        }
    )


def routes() -> list[BaseRoute]:
    return [Route("/admin/usage", usage, methods=["GET"])]
