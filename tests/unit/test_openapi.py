"""/openapi.json describes every API route from the wire models (the fuzz test reads it:
tests/unit/test_openapi_fuzz.py)."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import Route

from tests.support.inprocess import in_process

# Not in the description: the description itself, the operator API (/metrics: Prometheus text,
# docs/observability.md), and the model store's routes
# (they reach model hubs), documented in docs/ instead; so is the dashboard (its pages and the JSON
# they read, docs/ui.md).
UNDESCRIBED = {
    "/openapi.json",
    "/admin/providers",
    "/admin/usage",
    "/admin/keys",  # docs/accounts.md
    "/admin/keys/{key}",
    "/admin/keys/{key}/rotate",
    "/metrics",
    "/api/pull",
    "/api/delete",
}
UNDESCRIBED_PREFIXES = ("/ui",)


async def test_every_route_is_described_with_its_methods(tmp_path: Path) -> None:
    async with in_process(tmp_path) as lb:
        response = await lb.client.get("/openapi.json")
        routes = [r for r in lb.app.routes if isinstance(r, Route)]
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    served: dict[str, set[str]] = {}
    for r in routes:
        if r.path not in UNDESCRIBED and not r.path.startswith(UNDESCRIBED_PREFIXES):
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", r.path)  # Starlette's {model:path} is {model}
            served.setdefault(path, set()).update(m.lower() for m in r.methods or () if m != "HEAD")
    described = {path: set(item) - {"parameters"} for path, item in doc["paths"].items()}
    assert described == served


async def test_request_bodies_are_the_wire_models_schemas(tmp_path: Path) -> None:
    async with in_process(tmp_path) as lb:
        doc = (await lb.client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    chat = doc["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    body = schemas[chat["$ref"].rsplit("/", 1)[1]]
    assert {"model", "messages"} <= set(body["required"])
    for ref in re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', str(doc).replace("'", '"')):
        assert ref in schemas  # every reference resolves
