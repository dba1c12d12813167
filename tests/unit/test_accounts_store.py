"""The key store in a real SQLite database: secrets kept only as digests, shown once; names, scopes
and limits checked; revoke and rotate; the generation that tells servers something changed; and the
in-memory view servers check keys against."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lumbung.accounts.keys import digest
from lumbung.accounts.policy import KeyPolicy
from lumbung.accounts.store import SECRET_PREFIX, KeyStore
from lumbung.accounts.virtual import VirtualKeys
from lumbung.errors import AuthenticationError, InvalidRequest, NotFound
from tests.support.keys import key_store


def policy(name: str = "app", **fields: object) -> KeyPolicy:
    return KeyPolicy(id="", name=name, **fields)  # type: ignore[arg-type]


async def test_a_key_is_kept_only_as_its_digest(tmp_path: Path) -> None:
    async with key_store(tmp_path) as store:
        key, secret = await store.create(policy(models=("m1", "m2"), rpm=5))
    assert secret.startswith(SECRET_PREFIX) and len(secret) >= 40
    assert key.id.startswith("key_") and key.policy.models == ("m1", "m2") and key.policy.rpm == 5
    raw = (tmp_path / "lumbung.db").read_bytes()
    wal = tmp_path / "lumbung.db-wal"
    if wal.exists():
        raw += wal.read_bytes()
    assert secret.encode() not in raw
    with sqlite3.connect(tmp_path / "lumbung.db") as db:
        assert db.execute("select digest from virtual_keys").fetchone()[0] == digest(secret)


async def test_two_keys_never_share_a_secret_or_an_id(tmp_path: Path) -> None:
    async with key_store(tmp_path) as store:
        made = [await store.create(policy(f"k{i}")) for i in range(20)]
    assert len({k.id for k, _ in made}) == len({s for _, s in made}) == 20


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"rpm": 0}, "rpm"),
        ({"tpm": -5}, "tpm"),
        ({"max_concurrent": 0}, "max_concurrent"),
        ({"budget": 10.0}, "budget"),
        ({"period": "month"}, "budget"),
        ({"budget": -1.0, "period": "day"}, "budget"),
        ({"record": 1.5}, "record"),
        ({"egress": ("not a region",)}, "egress"),
        ({"models": ("",)}, "models"),
        ({"expires": datetime(2020, 1, 1, tzinfo=UTC)}, "expires"),
        ({"expires": datetime(2099, 1, 1)}, "expires"),
    ],
)
async def test_what_cannot_be_honoured_is_refused_naming_the_field(
    tmp_path: Path, fields: dict[str, object], param: str
) -> None:
    fields = {"name": "app", **fields}
    async with key_store(tmp_path) as store:
        with pytest.raises(InvalidRequest) as err:
            await store.create(KeyPolicy(id="", **fields))  # type: ignore[arg-type]
        assert await store.all() == []
    assert err.value.param == param


async def test_a_live_name_is_taken_once(tmp_path: Path) -> None:
    async with key_store(tmp_path) as store:
        first, _ = await store.create(policy("team"))
        with pytest.raises(InvalidRequest):
            await store.create(policy("team"))
        await store.revoke("team")
        second, _ = await store.create(policy("team"))
        assert (await store.get("team")).id == second.id  # the live one, by name
        assert (await store.get(first.id)).revoked is not None
        with pytest.raises(NotFound):
            await store.get("nobody")


async def test_rotate_keeps_the_key_and_changes_the_secret(tmp_path: Path) -> None:
    async with key_store(tmp_path) as store:
        key, old = await store.create(policy(tpm=100))
        rotated, new = await store.rotate(key.id)
        assert rotated.id == key.id and rotated.policy == key.policy and new != old
        _, keys = await store.snapshot()
        assert [s.digest for s in keys] == [digest(new)]
        await store.revoke(key.id)
        with pytest.raises(InvalidRequest):
            await store.rotate(key.id)


async def test_every_change_moves_the_generation(tmp_path: Path) -> None:
    async with key_store(tmp_path) as store:
        seen = [await store.generation()]
        key, _ = await store.create(policy())
        seen.append(await store.generation())
        await store.rotate(key.id)
        seen.append(await store.generation())
        await store.revoke(key.id)
        seen.append(await store.generation())
        with pytest.raises(NotFound):  # a change refused is no change
            await store.revoke("nobody")
        with pytest.raises(InvalidRequest):
            await store.create(policy(rpm=0))
        seen.append(await store.generation())
    assert seen == [0, 1, 2, 3, 3]


async def test_stores_in_two_processes_share_one_generation(tmp_path: Path) -> None:
    async with key_store(tmp_path) as one, key_store(tmp_path) as two:
        await one.create(policy("a"))
        await two.create(policy("b"))  # its own first write: the generation's row exists already
        assert await one.generation() == await two.generation() == 2


class Steps:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_the_view_sees_another_processes_revoke_after_its_refresh(tmp_path: Path) -> None:
    """The server's view (one connection) and another process (its own) share one database."""
    async with key_store(tmp_path) as mine, key_store(tmp_path) as theirs:
        key, secret = await theirs.create(policy())

        async def opened() -> KeyStore:
            return mine

        clock = Steps()
        view = VirtualKeys(opened, clock=clock, refresh=1.0)
        await view.fresh()
        found = view.find(digest(secret))
        assert found is not None and found.id == key.id
        await theirs.revoke(key.id)
        clock.now = 0.5
        await view.fresh()
        assert view.find(digest(secret)) is not None  # within the refresh, the last look holds
        clock.now = 1.0
        await view.fresh()
        with pytest.raises(AuthenticationError) as err:
            view.find(digest(secret))
        assert err.value.code == "api_key_revoked"


async def test_a_change_made_here_is_seen_on_the_next_look(tmp_path: Path) -> None:
    async with key_store(tmp_path) as store:

        async def opened() -> KeyStore:
            return store

        view = VirtualKeys(opened, clock=Steps())
        await view.fresh()
        _, secret = await store.create(policy())
        assert view.find(digest(secret)) is None
        view.changed()
        await view.fresh()
        assert view.find(digest(secret)) is not None


async def test_an_expired_key_is_refused(tmp_path: Path) -> None:
    async with key_store(tmp_path) as store:
        _, secret = await store.create(policy(expires=datetime.now(UTC) + timedelta(hours=1)))

        async def opened() -> KeyStore:
            return store

        later = (datetime.now(UTC) + timedelta(hours=2)).timestamp()
        view = VirtualKeys(opened, clock=Steps(), wall=lambda: later)
        await view.fresh()
        with pytest.raises(AuthenticationError) as err:
            view.find(digest(secret))
        assert err.value.code == "api_key_expired"
