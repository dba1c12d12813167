"""API keys, kept only as sha256 digests and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac

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


class KeyRing:
    """The configured keys: API keys, and operator (admin) keys, which are API keys too. Entries are raw
    keys or ``sha256:HEX`` digests; raw ones are hashed at once."""

    def __init__(self, entries: list[str], admin: list[str] | None = None) -> None:
        self._admin = _digests(admin or [], "admin_api_keys")
        self._digests = _digests(entries, "api_keys") + self._admin

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def check(self, presented: str | None, *, admin: bool = False) -> None:
        """Raise unless ``presented`` is a configured key (or none are configured); with ``admin``,
        unless it is an operator key: 401 for no key or an unknown one, 403 for an API key."""
        if not self._digests:
            return
        if not presented:
            raise AuthenticationError(
                "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
                code="missing_api_key",
            )
        candidate = digest(presented)
        if not _known(candidate, self._digests):
            raise AuthenticationError("Incorrect API key provided.")
        if admin and not _known(candidate, self._admin):
            raise PermissionDenied(
                "This action needs an operator key (admin_api_keys / LUMBUNG_ADMIN_API_KEYS); "
                "the key sent is an API key.",
                code="admin_key_required",
            )


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a client sent: ``Authorization: Bearer KEY`` (OpenAI, Ollama) or ``x-api-key`` (Anthropic)."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return x_api_key or None
