from __future__ import annotations

import hashlib

import pytest

from lumbung.accounts.keys import KeyRing, presented_key
from lumbung.errors import AuthenticationError, ConfigError, PermissionDenied


def test_no_keys_means_open() -> None:
    KeyRing([]).check(None)


def test_raw_and_hashed_keys() -> None:
    ring = KeyRing(["sk-a", "sha256:" + hashlib.sha256(b"sk-b").hexdigest().upper()])
    ring.check("sk-a")
    ring.check("sk-b")
    with pytest.raises(AuthenticationError):
        ring.check("sk-c")
    with pytest.raises(AuthenticationError) as err:
        ring.check(None)
    assert err.value.code == "missing_api_key"


def test_raw_keys_are_not_kept() -> None:
    ring = KeyRing(["sk-secret-value"])
    assert "sk-secret-value" not in repr(vars(ring))


def test_malformed_digest_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        KeyRing(["sha256:nothex"])


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "expected"),
    [
        ("Bearer sk-1", None, "sk-1"),
        ("bearer  sk-1 ", None, "sk-1"),
        (None, "sk-2", "sk-2"),
        ("Basic abc", "sk-3", "sk-3"),
        ("Bearer ", None, None),
        (None, None, None),
    ],
)
def test_presented_key(authorization: str | None, x_api_key: str | None, expected: str | None) -> None:
    assert presented_key(authorization, x_api_key) == expected


def test_operator_keys_are_api_keys_and_only_they_pass_admin_checks() -> None:
    ring = KeyRing(["sk-user"], ["sk-admin"])
    ring.check("sk-user")
    ring.check("sk-admin")
    ring.check("sk-admin", admin=True)
    with pytest.raises(PermissionDenied) as denied:
        ring.check("sk-user", admin=True)
    assert denied.value.status == 403 and denied.value.code == "admin_key_required"
    with pytest.raises(AuthenticationError):
        ring.check("sk-other", admin=True)
    with pytest.raises(AuthenticationError):
        ring.check(None, admin=True)
    # API keys but no operator keys: operator actions are refused to every key.
    with pytest.raises(PermissionDenied):
        KeyRing(["sk-user"]).check("sk-user", admin=True)
    KeyRing([]).check(None, admin=True)  # no keys at all: open, like everything else
    with pytest.raises(ConfigError, match="admin_api_keys"):
        KeyRing([], ["sha256:nothex"])


def test_check_says_who_is_calling_by_digest_only() -> None:
    ring = KeyRing(["sk-user"], ["sk-admin"])
    user, admin = ring.check("sk-user"), ring.check("sk-admin", admin=True)
    assert user.owner == hashlib.sha256(b"sk-user").hexdigest() and not user.sees_all
    assert admin.sees_all and admin.owner == hashlib.sha256(b"sk-admin").hexdigest()
    assert user.may_see(user.owner) and not user.may_see(admin.owner) and not user.may_see(None)
    assert admin.may_see(user.owner) and admin.may_see(None)
    open_ = KeyRing([]).check(None)
    assert open_.owner is None and open_.may_see(user.owner) and open_.may_see(None)
