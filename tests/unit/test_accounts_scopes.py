"""A virtual key's scopes on every surface, in process over fake backends: a name outside its
routes/models is a 403 in the API's own envelope (and never reaches a backend), listings show only
what it may use, and its egress scope keeps its traffic off providers elsewhere (failover goes on
among the rest) on the typed path and the pass-through alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lumbung.errors import UpstreamError
from tests.support.fake_backend import Fail, FakeBackend
from tests.support.fake_upstream import FakeUpstream
from tests.support.inprocess import MODEL, in_process, route
from tests.support.keys import bearer, make_key
from tests.support.surfaces import (
    ANTHROPIC_MESSAGES,
    SURFACES,
    Surface,
    anthropic_error,
    ollama_error,
    openai_error,
)

surfaces = pytest.mark.parametrize("surface", SURFACES, ids=[s.name for s in SURFACES])
KEYS: dict[str, Any] = {"api_keys": ["k-user"], "admin_api_keys": ["k-admin"]}


def key_headers(surface: Surface, key: str) -> dict[str, str]:
    if surface is ANTHROPIC_MESSAGES:
        return {**surface.headers, "x-api-key": key}
    return {**surface.headers, "authorization": f"Bearer {key}"}


def two_providers(tmp_path: Path, **options: Any) -> Any:
    """Local model MODEL; route ``r`` over providers ``sg`` (jurisdiction SG) then ``id`` (ID)."""
    return in_process(
        tmp_path,
        providers={"sg": FakeBackend("sg", ["m"]), "id": FakeBackend("id", ["m"])},
        provider_options={"sg": {"jurisdiction": "SG"}, "id": {"jurisdiction": "ID"}},
        routes=[route("r", ["sg"], ["id"], aliases=["r-alias"])],
        **KEYS,
        **options,
    )


@surfaces
async def test_a_model_outside_the_keys_scope_is_403_in_the_apis_envelope(
    tmp_path: Path, surface: Surface
) -> None:
    _, secret = await make_key(tmp_path, "local-only", models=(MODEL,))
    async with two_providers(tmp_path) as lb:
        allowed = await lb.client.post(
            surface.path, json=surface.body(MODEL, stream=False), headers=key_headers(surface, secret)
        )
        refused = [
            await lb.client.post(
                surface.path, json=surface.body(name, stream=stream), headers=key_headers(surface, secret)
            )
            for name in ("r", "r-alias")
            for stream in (False, True)
        ]
        other = await lb.client.post(
            surface.path, json=surface.body("r", stream=False), headers=key_headers(surface, "k-user")
        )
    assert allowed.status_code == 200, allowed.text
    for response in refused:
        assert response.status_code == 403, response.text
        assert surface.is_error_envelope(response.json())
        assert "may not use model" in response.text
    assert other.status_code == 200  # a config key is not scoped
    assert lb.fake("sg").opened == 1 and lb.fake("id").opened == 0  # that one only


async def test_a_route_in_scope_allows_its_aliases(tmp_path: Path) -> None:
    _, secret = await make_key(tmp_path, "route-only", routes=("r",))
    async with two_providers(tmp_path) as lb:
        body = {"messages": [{"role": "user", "content": "hi"}]}
        by_alias = await lb.client.post(
            "/v1/chat/completions", json={**body, "model": "r-alias"}, headers=bearer(secret)
        )
        local = await lb.client.post(
            "/v1/chat/completions", json={**body, "model": MODEL}, headers=bearer(secret)
        )
    assert by_alias.status_code == 200
    assert local.status_code == 403 and local.json()["error"]["code"] == "model_not_allowed"


async def test_embeddings_and_token_counts_are_scoped(tmp_path: Path) -> None:
    _, secret = await make_key(tmp_path, "local-only", models=(MODEL,))
    auth = bearer(secret)
    async with two_providers(tmp_path) as lb:
        openai_ok = await lb.client.post("/v1/embeddings", json={"model": MODEL, "input": "x"}, headers=auth)
        openai_no = await lb.client.post("/v1/embeddings", json={"model": "r", "input": "x"}, headers=auth)
        ollama_no = await lb.client.post("/api/embed", json={"model": "r", "input": "x"}, headers=auth)
        old_no = await lb.client.post("/api/embeddings", json={"model": "r", "prompt": "x"}, headers=auth)
        count_no = await lb.client.post(
            "/v1/messages/count_tokens",
            json={"model": "r", "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-api-key": secret, "anthropic-version": "2023-06-01"},
        )
    assert openai_ok.status_code == 200
    assert openai_no.status_code == 403 and openai_error(openai_no.json())
    assert ollama_no.status_code == 403 and ollama_error(ollama_no.json())
    assert old_no.status_code == 403 and ollama_error(old_no.json())
    assert count_no.status_code == 403 and anthropic_error(count_no.json())


async def test_listings_show_only_what_the_key_may_use(tmp_path: Path) -> None:
    _, secret = await make_key(tmp_path, "route-only", routes=("r",))
    async with two_providers(tmp_path) as lb:
        models = (await lb.client.get("/v1/models", headers=bearer(secret))).json()
        tags = (await lb.client.get("/api/tags", headers=bearer(secret))).json()
        hidden = await lb.client.get(f"/v1/models/{MODEL}", headers=bearer(secret))
        shown = await lb.client.get("/v1/models/r", headers=bearer(secret))
        show = await lb.client.post("/api/show", json={"model": MODEL}, headers=bearer(secret))
        everything = (await lb.client.get("/v1/models", headers=bearer("k-user"))).json()
    assert [m["id"] for m in models["data"]] == ["r"]
    assert {m["name"].removesuffix(":latest") for m in tags["models"]} == {"r", "r-alias"}
    assert hidden.status_code == 403 and openai_error(hidden.json())
    assert shown.status_code == 200
    assert show.status_code == 403 and ollama_error(show.json())
    assert {m["id"] for m in everything["data"]} == {MODEL, "r"}


@surfaces
async def test_egress_scope_skips_providers_elsewhere(tmp_path: Path, surface: Surface) -> None:
    _, only_id = await make_key(tmp_path, "id-only", egress=("ID",))
    _, only_us = await make_key(tmp_path, "us-only", egress=("US",))
    async with two_providers(tmp_path) as lb:
        served = await lb.client.post(
            surface.path, json=surface.body("r", stream=False), headers=key_headers(surface, only_id)
        )
        refused = await lb.client.post(
            surface.path, json=surface.body("r", stream=False), headers=key_headers(surface, only_us)
        )
        local = await lb.client.post(
            surface.path, json=surface.body(MODEL, stream=False), headers=key_headers(surface, only_us)
        )
        unscoped = await lb.client.post(
            surface.path, json=surface.body("r", stream=False), headers=key_headers(surface, "k-user")
        )
    assert served.status_code == 200
    assert refused.status_code == 403 and surface.is_error_envelope(refused.json())
    assert "egress" in refused.text or "may go only" in refused.text
    assert local.status_code == 200  # a local model sends nothing anywhere
    assert unscoped.status_code == 200
    # The SG provider, first in line, saw only the unscoped key's request.
    assert lb.fake("sg").opened == 1 and lb.fake("id").opened == 1


async def test_egress_scope_holds_when_the_allowed_provider_fails(tmp_path: Path) -> None:
    """Failover never crosses the key's egress scope: with the ID provider failing, the SG one
    (first in line, healthy) is still not used for it."""
    _, only_id = await make_key(tmp_path, "id-only", egress=("ID",))
    async with two_providers(tmp_path) as lb:
        lb.fake("id").default = Fail(UpstreamError("the ID provider is down"))
        response = await lb.client.post(
            "/v1/chat/completions",
            json={"model": "r", "messages": [{"role": "user", "content": "hi"}]},
            headers=bearer(only_id),
        )
    assert response.status_code >= 500 and openai_error(response.json())
    assert lb.fake("sg").opened == 0 and lb.fake("id").opened >= 1


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[FakeUpstream, FakeUpstream]]:
    a, b = FakeUpstream("a", words=4), FakeUpstream("b", words=4)
    servers = [await a.serve(), await b.serve()]
    yield a, b
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("stream", [False, True])
async def test_the_pass_through_path_is_scoped_too(
    tmp_path: Path, upstreams: tuple[FakeUpstream, FakeUpstream], stream: bool
) -> None:
    a, b = upstreams
    _, local_only = await make_key(tmp_path, "local-only", models=(MODEL,))
    _, only_id = await make_key(tmp_path, "id-only", egress=("ID",))
    async with in_process(
        tmp_path,
        providers={"a": a.base_url, "b": b.base_url},
        provider_options={"a": {"jurisdiction": "SG"}, "b": {"jurisdiction": "ID"}},
        routes=[route("r", ["a"], ["b"])],
        **KEYS,
    ) as lb:
        assert lb.gateway.forwards("r") == "r"  # this route takes the pass-through path
        body = {"model": "r", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
        refused = await lb.client.post("/v1/chat/completions", json=body, headers=bearer(local_only))
        served = await lb.client.post("/v1/chat/completions", json=body, headers=bearer(only_id))
    assert refused.status_code == 403 and openai_error(refused.json())
    assert served.status_code == 200 and b"from b" in served.content
    assert len(a.seen) == 0 and len(b.seen) == 1


async def test_shadow_copies_keep_to_the_keys_egress(tmp_path: Path) -> None:
    """A route shadowed to a candidate abroad: a copy of a request whose key may send data only to
    ID is not sent there (counted as egress_denied); a config key's copy is."""
    local, abroad = FakeUpstream("local", words=3), FakeUpstream("abroad", words=3)
    servers = [await local.serve(), await abroad.serve()]
    _, only_id = await make_key(tmp_path, "id-only", egress=("ID",))
    try:
        async with in_process(
            tmp_path,
            providers={"here": local.base_url, "there": abroad.base_url},
            provider_options={"there": {"jurisdiction": "US"}},
            routes=[route("gpt", ["here"], shadow={"target": "us", "fraction": 1.0}), route("us", ["there"])],
            **KEYS,
        ) as lb:
            body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
            for key in (only_id, "k-user"):
                response = await lb.client.post("/v1/chat/completions", json=body, headers=bearer(key))
                assert response.status_code == 200 and "from local" in response.text
            tap = lb.gateway.tap
            shadows = getattr(tap, "shadows", None)
            assert shadows is not None
            await shadows.idle()
            lane = shadows.lanes["gpt"]
        assert lane.counts["egress_denied"] == 1
        assert len(abroad.seen) == 1  # the config key's copy only
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()
