"""``/admin/keys`` in process: operator keys only, every answer and error in OpenAI's envelope; a key
made here works at once, and a revoke or rotate here takes effect on the server's next request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.inprocess import MODEL, in_process
from tests.support.keys import bearer
from tests.support.surfaces import openai_error

KEYS: dict[str, Any] = {"api_keys": ["k-user"], "admin_api_keys": ["k-admin"]}
ADMIN = bearer("k-admin")
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


async def test_create_list_show_rotate_revoke(tmp_path: Path) -> None:
    async with in_process(tmp_path, **KEYS) as lb:
        made = await lb.client.post(
            "/admin/keys",
            json={
                "name": "billing",
                "models": [MODEL],
                "rpm": 60,
                "expires": "30d",
                "budget": 5,
                "period": "day",
            },
            headers=ADMIN,
        )
        assert made.status_code == 201, made.text
        key = made.json()
        secret, key_id = key["key"], key["id"]
        assert secret.startswith("lb-") and key["models"] == [MODEL] and key["state"] == "active"
        assert (
            await lb.client.post("/v1/chat/completions", json=CHAT, headers=bearer(secret))
        ).status_code == 200

        listed = (await lb.client.get("/admin/keys", headers=ADMIN)).json()
        assert [k["id"] for k in listed["data"]] == [key_id] and "key" not in listed["data"][0]
        assert secret not in str(listed)
        by_name = await lb.client.get("/admin/keys/billing", headers=ADMIN)
        assert by_name.json()["id"] == key_id and "key" not in by_name.json()

        rotated = await lb.client.post(f"/admin/keys/{key_id}/rotate", headers=ADMIN)
        new = rotated.json()["key"]
        assert rotated.status_code == 200 and new != secret and rotated.json()["id"] == key_id
        old_refused = await lb.client.post("/v1/chat/completions", json=CHAT, headers=bearer(secret))
        assert old_refused.status_code == 401 and openai_error(old_refused.json())
        assert (
            await lb.client.post("/v1/chat/completions", json=CHAT, headers=bearer(new))
        ).status_code == 200

        revoked = await lb.client.delete(f"/admin/keys/{key_id}", headers=ADMIN)
        assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
        after = await lb.client.post("/v1/chat/completions", json=CHAT, headers=bearer(new))
        assert after.status_code == 401 and after.json()["error"]["code"] == "api_key_revoked"


async def test_only_operator_keys_may_manage_keys(tmp_path: Path) -> None:
    async with in_process(tmp_path, **KEYS) as lb:
        made = (await lb.client.post("/admin/keys", json={"name": "app"}, headers=ADMIN)).json()
        virtual = bearer(made["key"])
        answers = [
            await lb.client.get("/admin/keys", headers=headers) for headers in (bearer("k-user"), virtual, {})
        ]
        create = await lb.client.post("/admin/keys", json={"name": "mine"}, headers=virtual)
        revoke = await lb.client.delete(f"/admin/keys/{made['id']}", headers=bearer("k-user"))
    assert [a.status_code for a in answers] == [403, 403, 401]
    assert create.status_code == 403 and revoke.status_code == 403
    assert all(openai_error(a.json()) for a in (*answers, create, revoke))


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{", None),
        (b"[]", None),
        (b'{"models": ["m"]}', "name"),
        (b'{"name": "a", "rpm": "ten"}', "rpm"),
        (b'{"name": "a", "rpm": 0}', "rpm"),
        (b'{"name": "a", "colour": "red"}', "colour"),
        (b'{"name": "a", "period": "week", "budget": 1}', "period"),
        (b'{"name": "a", "budget": 1}', "budget"),
        (b'{"name": "a", "expires": "tomorrow"}', "expires"),
        (b'{"name": "a", "expires": "2001-01-01"}', "expires"),
        (b'{"name": "a", "record": 3}', "record"),
        (b'{"name": "a/b"}', "name"),
    ],
)
async def test_a_bad_body_is_a_400_naming_the_field(tmp_path: Path, body: bytes, param: str | None) -> None:
    async with in_process(tmp_path, **KEYS) as lb:
        response = await lb.client.post(
            "/admin/keys", content=body, headers={**ADMIN, "content-type": "application/json"}
        )
        listed = (await lb.client.get("/admin/keys", headers=ADMIN)).json()
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert openai_error(response.json())
    if param is not None:
        assert error["param"] == param
    assert listed["data"] == []


async def test_unknown_keys_and_clashes(tmp_path: Path) -> None:
    async with in_process(tmp_path, **KEYS) as lb:
        missing = [
            await lb.client.get("/admin/keys/nobody", headers=ADMIN),
            await lb.client.delete("/admin/keys/nobody", headers=ADMIN),
            await lb.client.post("/admin/keys/nobody/rotate", headers=ADMIN),
        ]
        first = await lb.client.post("/admin/keys", json={"name": "app"}, headers=ADMIN)
        again = await lb.client.post("/admin/keys", json={"name": "app"}, headers=ADMIN)
        await lb.client.delete("/admin/keys/app", headers=ADMIN)
        rotate_revoked = await lb.client.post(f"/admin/keys/{first.json()['id']}/rotate", headers=ADMIN)
    assert [m.status_code for m in missing] == [404, 404, 404]
    assert all(openai_error(m.json()) and m.json()["error"]["code"] == "key_not_found" for m in missing)
    assert again.status_code == 400 and again.json()["error"]["code"] == "key_exists"
    assert rotate_revoked.status_code == 400 and rotate_revoked.json()["error"]["code"] == "key_revoked"
