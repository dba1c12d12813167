"""The boundary every request crosses, for every API, in process over a fake backend: keys (401, and 403
for an API key on an operator route), the body limit (413), bad bodies (400, never a 500), each in the
API's own error envelope, with the request id echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from lumbung.errors import UpstreamError
from tests.support.fake_backend import FakeBackend
from tests.support.fake_upstream import FakeUpstream
from tests.support.inprocess import MODEL, in_process, route
from tests.support.surfaces import ANTHROPIC_MESSAGES, OPENAI_CHAT, SURFACES, Surface, openai_error

surfaces = pytest.mark.parametrize("surface", SURFACES, ids=[s.name for s in SURFACES])
LIMIT = 2048


def key_headers(surface: Surface, key: str) -> dict[str, str]:
    if surface is ANTHROPIC_MESSAGES:
        return {**surface.headers, "x-api-key": key}
    return {**surface.headers, "authorization": f"Bearer {key}"}


@surfaces
async def test_keys_are_checked_before_anything_else(tmp_path: Path, surface: Surface) -> None:
    async with in_process(tmp_path, api_keys=["k-user"], admin_api_keys=["k-admin"]) as lb:
        body = surface.body(MODEL, stream=False)
        missing = await lb.client.post(surface.path, json=body, headers=surface.headers)
        wrong = await lb.client.post(surface.path, json=body, headers=key_headers(surface, "k-nope"))
        right = await lb.client.post(surface.path, json=body, headers=key_headers(surface, "k-user"))
        admin = await lb.client.post(surface.path, json=body, headers=key_headers(surface, "k-admin"))
    for refused in (missing, wrong):
        assert refused.status_code == 401
        assert surface.is_error_envelope(refused.json())
    assert right.status_code == admin.status_code == 200
    assert lb.local.opened == 2  # refused requests never reached the backend


async def test_an_api_key_on_an_operator_route_is_forbidden(tmp_path: Path) -> None:
    async with in_process(tmp_path, api_keys=["k-user"], admin_api_keys=["k-admin"]) as lb:
        user = await lb.client.get("/admin/providers", headers={"authorization": "Bearer k-user"})
        admin = await lb.client.get("/admin/providers", headers={"authorization": "Bearer k-admin"})
        nobody = await lb.client.get("/admin/providers")
    assert user.status_code == 403 and openai_error(user.json())
    assert nobody.status_code == 401 and openai_error(nobody.json())
    assert admin.status_code == 200


@surfaces
async def test_a_body_over_the_limit_is_413_in_the_apis_envelope(tmp_path: Path, surface: Surface) -> None:
    async with in_process(tmp_path, max_body_bytes=LIMIT) as lb:
        body = surface.body(MODEL, stream=False)
        body["padding"] = "x" * LIMIT
        response = await lb.client.post(surface.path, json=body, headers=surface.headers)

        # Without Content-Length (chunked), the limit holds while reading.
        async def chunks() -> object:
            yield b'{"model": "' + b"x" * LIMIT
            yield b'"}'

        chunked = await lb.client.post(surface.path, content=chunks(), headers=surface.headers)  # type: ignore[arg-type]
    for refused in (response, chunked):
        assert refused.status_code == 413
        assert surface.is_error_envelope(refused.json())
    assert lb.local.opened == 0


@surfaces
@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"[]", b"null", b'{"model": 5}', b"\xff\xfe", b"[" * 5000 + b"]" * 5000],
    ids=["empty", "truncated", "array", "null", "wrong-type", "not-utf8", "deep"],
)
async def test_a_bad_body_is_a_400_never_a_500(tmp_path: Path, surface: Surface, raw: bytes) -> None:
    async with in_process(tmp_path) as lb:
        response = await lb.client.post(
            surface.path, content=raw, headers={**surface.headers, "content-type": "application/json"}
        )
    assert response.status_code == 400, response.text
    assert surface.is_error_envelope(response.json())


@surfaces
async def test_the_request_id_is_echoed_on_answers_and_errors(tmp_path: Path, surface: Surface) -> None:
    async with in_process(tmp_path) as lb:
        headers = {**surface.headers, "x-request-id": "req-given"}
        ok = await lb.client.post(surface.path, json=surface.body(MODEL, stream=False), headers=headers)
        bad = await lb.client.post(surface.path, content=b"{", headers=headers)
    assert ok.headers["x-request-id"] == bad.headers["x-request-id"] == "req-given"


async def test_the_pass_through_path_keeps_the_same_boundary(tmp_path: Path) -> None:
    upstream = FakeUpstream("up")
    server = await upstream.serve()
    try:
        async with in_process(
            tmp_path,
            providers={"up": upstream.base_url},
            routes=[route("r", ["up"])],
            api_keys=["k-user"],
            max_body_bytes=LIMIT,
        ) as lb:
            body = OPENAI_CHAT.body("r", stream=True)
            auth = {"authorization": "Bearer k-user", "x-request-id": "req-pt"}
            missing = await lb.client.post(OPENAI_CHAT.path, json=body)
            big = await lb.client.post(OPENAI_CHAT.path, json={**body, "pad": "x" * LIMIT}, headers=auth)
            ok = await lb.client.post(OPENAI_CHAT.path, json=body, headers=auth)
    finally:
        server.close()
        await server.wait_closed()
    assert missing.status_code == 401 and openai_error(missing.json())
    assert big.status_code == 413 and openai_error(big.json())
    assert ok.status_code == 200 and OPENAI_CHAT.is_done(OPENAI_CHAT.parse(ok.content))
    assert ok.headers["x-request-id"] == "req-pt"
    assert len(upstream.seen) == 1  # the refused requests never left lumbung


EMBEDDINGS = [
    ("/v1/embeddings", openai_error),
    ("/api/embed", lambda body: isinstance(body, dict) and isinstance(body.get("error"), str)),
]


@pytest.mark.parametrize(("path", "is_envelope"), EMBEDDINGS, ids=[p for p, _ in EMBEDDINGS])
async def test_embeddings_keep_the_same_boundary(tmp_path: Path, path: str, is_envelope: object) -> None:
    async with in_process(tmp_path, api_keys=["k-user"], max_body_bytes=LIMIT) as lb:
        auth = {"authorization": "Bearer k-user"}
        body = {"model": MODEL, "input": ["hi", "there"]}
        ok = await lb.client.post(path, json=body, headers=auth)
        missing = await lb.client.post(path, json=body)
        big = await lb.client.post(path, json={**body, "input": "x" * LIMIT}, headers=auth)
        bad = await lb.client.post(path, content=b"{", headers=auth)
    assert ok.status_code == 200
    for refused, status in ((missing, 401), (big, 413), (bad, 400)):
        assert refused.status_code == status
        assert is_envelope(refused.json())  # type: ignore[operator]


async def test_embeddings_move_to_the_next_target_when_one_fails(tmp_path: Path) -> None:
    a, b = FakeBackend("a"), FakeBackend("b")
    a.embed_error = UpstreamError("a is down")
    async with in_process(tmp_path, providers={"a": a, "b": b}, routes=[route("r", ["a"], ["b"])]) as lb:
        response = await lb.client.post("/v1/embeddings", json={"model": "r", "input": "hi"})
    assert response.status_code == 200
    assert len(response.json()["data"]) == 1
