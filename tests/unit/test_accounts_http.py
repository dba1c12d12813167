"""Virtual keys at the request boundary, in process over a fake backend: a key made in the data
directory works on every API next to the config file's keys, carries its policy on the request's
Caller, is never an operator key, and stops working once revoked (here at once; from another process
after the view's refresh) or expired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lumbung.accounts.virtual import VirtualKeys
from lumbung.record import RequestRecord
from tests.support.inprocess import MODEL, InProcess, in_process
from tests.support.keys import bearer, key_store, make_key
from tests.support.surfaces import ANTHROPIC_MESSAGES, SURFACES, Surface, openai_error

surfaces = pytest.mark.parametrize("surface", SURFACES, ids=[s.name for s in SURFACES])
KEYS = {"api_keys": ["k-user"], "admin_api_keys": ["k-admin"]}


def key_headers(surface: Surface, key: str) -> dict[str, str]:
    if surface is ANTHROPIC_MESSAGES:
        return {**surface.headers, "x-api-key": key}
    return {**surface.headers, "authorization": f"Bearer {key}"}


def view_of(lb: InProcess) -> VirtualKeys:
    view = lb.app.state.lumbung.virtual_keys
    assert isinstance(view, VirtualKeys)
    return view


class Steps:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@surfaces
async def test_a_virtual_key_works_beside_the_config_keys(tmp_path: Path, surface: Surface) -> None:
    key_id, secret = await make_key(tmp_path, "app", rpm=7, models=(MODEL,))
    records: list[RequestRecord] = []
    async with in_process(tmp_path, **KEYS) as lb:
        lb.app.state.lumbung.sinks.append(records.append)
        body = surface.body(MODEL, stream=False)
        virtual = await lb.client.post(surface.path, json=body, headers=key_headers(surface, secret))
        config = await lb.client.post(surface.path, json=body, headers=key_headers(surface, "k-user"))
        wrong = await lb.client.post(surface.path, json=body, headers=key_headers(surface, secret + "x"))
    assert virtual.status_code == config.status_code == 200
    assert wrong.status_code == 401 and surface.is_error_envelope(wrong.json())
    caller = records[0].caller
    assert caller is not None and caller.policy is not None
    assert caller.policy.id == key_id and caller.policy.rpm == 7 and caller.owner == key_id
    assert not caller.sees_all
    assert records[1].caller is not None and records[1].caller.policy is None  # a config key: no policy


async def test_a_virtual_key_is_never_an_operator_key(tmp_path: Path) -> None:
    _, secret = await make_key(tmp_path, "app")
    async with in_process(tmp_path, **KEYS) as lb:
        response = await lb.client.get("/admin/providers", headers=bearer(secret))
    assert response.status_code == 403 and openai_error(response.json())


async def test_virtual_keys_need_keys_configured(tmp_path: Path) -> None:
    """A server with no configured keys answers everyone and reads no key store."""
    await make_key(tmp_path, "app")
    async with in_process(tmp_path) as lb:
        response = await lb.client.get("/v1/models")
        assert response.status_code == 200
        view = lb.app.state.lumbung.virtual_keys
        assert view is not None and view._store is None


@surfaces
async def test_a_key_revoked_by_another_process_is_refused_after_the_refresh(
    tmp_path: Path, surface: Surface
) -> None:
    key_id, secret = await make_key(tmp_path, "app")
    async with in_process(tmp_path, **KEYS) as lb:
        view = view_of(lb)
        clock = Steps()
        view.clock = clock
        body = surface.body(MODEL, stream=False)
        before = await lb.client.post(surface.path, json=body, headers=key_headers(surface, secret))
        async with key_store(tmp_path) as other:  # `lumbung keys revoke`, or another instance
            await other.revoke(key_id)
        clock.now = view.refresh
        after = await lb.client.post(surface.path, json=body, headers=key_headers(surface, secret))
    assert before.status_code == 200
    assert after.status_code == 401 and surface.is_error_envelope(after.json())
    assert "revoked" in after.text


async def test_a_key_made_by_another_process_works_after_the_refresh(tmp_path: Path) -> None:
    async with in_process(tmp_path, **KEYS) as lb:
        view = view_of(lb)
        clock = Steps()
        view.clock = clock
        assert (await lb.client.get("/v1/models", headers=bearer("k-user"))).status_code == 200
        _, secret = await make_key(tmp_path, "late")
        clock.now = view.refresh
        response = await lb.client.get("/v1/models", headers=bearer(secret))
    assert response.status_code == 200


async def test_an_expired_key_is_401(tmp_path: Path) -> None:
    _, secret = await make_key(tmp_path, "brief", expires=datetime.now(UTC) + timedelta(hours=1))
    async with in_process(tmp_path, **KEYS) as lb:
        view = view_of(lb)
        ok = await lb.client.get("/v1/models", headers=bearer(secret))
        view.wall = lambda: (datetime.now(UTC) + timedelta(hours=2)).timestamp()
        expired = await lb.client.get("/v1/models", headers=bearer(secret))
    assert ok.status_code == 200
    assert expired.status_code == 401 and openai_error(expired.json())
    assert expired.json()["error"]["code"] == "api_key_expired"


async def test_what_a_key_stored_stays_its_own_when_it_is_rotated(tmp_path: Path) -> None:
    """A stored response belongs to the key's id, not its secret's digest: the rotated secret finds
    it, another key does not."""
    key_id, secret = await make_key(tmp_path, "app")
    _, other = await make_key(tmp_path, "other")
    async with in_process(tmp_path, **KEYS) as lb:
        made = await lb.client.post(
            "/v1/responses", json={"model": MODEL, "input": "hi", "store": True}, headers=bearer(secret)
        )
        assert made.status_code == 200, made.text
        response_id = made.json()["id"]
        async with key_store(tmp_path) as store:
            _, rotated = await store.rotate(key_id)
        view_of(lb).changed()  # as /admin/keys does after a rotate
        mine = await lb.client.get(f"/v1/responses/{response_id}", headers=bearer(rotated))
        theirs = await lb.client.get(f"/v1/responses/{response_id}", headers=bearer(other))
        old = await lb.client.get(f"/v1/responses/{response_id}", headers=bearer(secret))
    assert mine.status_code == 200 and mine.json()["id"] == response_id
    assert theirs.status_code == 404 and openai_error(theirs.json())
    assert old.status_code == 401


async def test_two_instances_on_one_postgresql_share_the_keys(tmp_path: Path, postgres_url: str) -> None:
    """Two servers behind one load balancer, one PostgreSQL: a key made over one's /admin/keys works
    on the other, and a revoke on one reaches the other once its view has refreshed."""
    shared = {**KEYS, "database_url": postgres_url}
    async with (
        in_process(tmp_path / "a", **shared) as a,
        in_process(tmp_path / "b", **shared) as b,
    ):
        clock = Steps()
        view_of(b).clock = clock
        assert (await b.client.get("/v1/models", headers=bearer("k-user"))).status_code == 200  # b looked
        made = await a.client.post("/admin/keys", json={"name": "shared"}, headers=bearer("k-admin"))
        assert made.status_code == 201, made.text
        secret, key_id = made.json()["key"], made.json()["id"]
        clock.now = view_of(b).refresh
        on_b = await b.client.get("/v1/models", headers=bearer(secret))
        await a.client.delete(f"/admin/keys/{key_id}", headers=bearer("k-admin"))
        on_a = await a.client.get("/v1/models", headers=bearer(secret))
        still_on_b = await b.client.get("/v1/models", headers=bearer(secret))  # within b's refresh
        clock.now += view_of(b).refresh
        gone_on_b = await b.client.get("/v1/models", headers=bearer(secret))
    assert on_b.status_code == 200
    assert on_a.status_code == 401  # the instance that revoked it: at once
    assert still_on_b.status_code == 200  # the documented window (docs/accounts.md)
    assert gone_on_b.status_code == 401 and gone_on_b.json()["error"]["code"] == "api_key_revoked"
    assert not (tmp_path / "a" / "lumbung.db").exists()
