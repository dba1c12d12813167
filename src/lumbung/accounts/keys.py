"""API keys, kept only as sha256 digests and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from lumbung.accounts.policy import KeyPolicy
from lumbung.errors import AuthenticationError, ConfigError, PermissionDenied

_PREFIX = "sha256:"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _digests(entries: list[str], setting: str) -> tuple[str, ...]:
    digests = []
    for entry in entries:
        if entry.startswith(_PREFIX):
            hexpart = entry[len(_PREFIX) :].lower()
            if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
                raise ConfigError(f"an {setting} entry starting with 'sha256:' must be 64 hex digits")
            digests.append(hexpart)
        elif entry:
            digests.append(digest(entry))
    return tuple(digests)


def _known(candidate: str, digests: tuple[str, ...]) -> bool:
    ok = False
    for known in digests:  # no early exit: the time taken does not depend on which key
        ok |= hmac.compare_digest(candidate, known)
    return ok


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request, as far as what it owns goes: the sha256 digest of its key (never the key),
    or for a virtual key its id (stable when the key is rotated), and whether it may see what every
    key owns (an operator key, or a server with no keys at all)."""

    owner: str | None
    sees_all: bool
    policy: KeyPolicy | None = None  # a virtual key's scopes and limits; None: a config-file key (or none)

    @property
    def budgeted(self) -> bool:
        """A virtual key with a spending budget: what its last requests cost must be noted first."""
        return self.policy is not None and self.policy.budget is not None

    def may_see(self, owner: str | None) -> bool:
        """Whether this caller may read or change something ``owner`` created (None: created before
        owners were kept, or with no keys configured: operators only)."""
        if self.sees_all:
            return True
        return owner is not None and self.owner is not None and hmac.compare_digest(owner, self.owner)


OPEN = Caller(owner=None, sees_all=True)


class KeyRing:
    """The configured keys: API keys, and operator (admin) keys, which are API keys too. Entries are raw
    keys or ``sha256:HEX`` digests; raw ones are hashed at once."""

    def __init__(self, entries: list[str], admin: list[str] | None = None) -> None:
        self._admin = _digests(admin or [], "admin_api_keys")
        self._digests = _digests(entries, "api_keys") + self._admin

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def check(self, presented: str | None, *, admin: bool = False) -> Caller:
        """Who is calling. Raise unless ``presented`` is a configured key (or none are configured);
        with ``admin``, unless it is an operator key: 401 for no key or an unknown one, 403 for an
        API key."""
        if not self._digests:
            return OPEN
        if not presented:
            raise missing_key()
        caller = self.match(digest(presented), admin=admin)
        if caller is None:
            raise AuthenticationError("Incorrect API key provided.")
        return caller

    def match(self, candidate: str, *, admin: bool = False) -> Caller | None:
        """The caller whose key has the digest ``candidate``, None when no configured key has it;
        with ``admin``, 403 unless it is an operator key."""
        if not _known(candidate, self._digests):
            return None
        operator = _known(candidate, self._admin)
        if admin and not operator:
            raise operator_key_required()
        return Caller(owner=candidate, sees_all=operator)


def operator_key_required() -> PermissionDenied:
    return PermissionDenied(
        "This action needs an operator key (admin_api_keys / LUMBUNG_ADMIN_API_KEYS); "
        "the key sent is an API key.",
        code="admin_key_required",
    )


def missing_key() -> AuthenticationError:
    return AuthenticationError(
        "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
        code="missing_api_key",
    )


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a client sent: ``Authorization: Bearer KEY`` (OpenAI, Ollama) or ``x-api-key`` (Anthropic)."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return x_api_key or None
