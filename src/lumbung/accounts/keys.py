"""API keys, kept only as sha256 digests and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac

from lumbung.errors import AuthenticationError, ConfigError

_PREFIX = "sha256:"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyRing:
    """The configured keys. Entries are raw keys or ``sha256:HEX`` digests; raw ones are hashed at once."""

    def __init__(self, entries: list[str]) -> None:
        digests = []
        for entry in entries:
            if entry.startswith(_PREFIX):
                hexpart = entry[len(_PREFIX) :].lower()
                if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
                    raise ConfigError("an api_keys entry starting with 'sha256:' must be 64 hex digits")
                digests.append(hexpart)
            elif entry:
                digests.append(digest(entry))
        self._digests = tuple(digests)

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def check(self, presented: str | None) -> None:
        """Raise AuthenticationError unless ``presented`` is a configured key (or none are configured)."""
        if not self._digests:
            return
        if not presented:
            raise AuthenticationError(
                "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
                code="missing_api_key",
            )
        candidate = digest(presented)
        ok = False
        for known in self._digests:  # no early exit: the time taken does not depend on which key
            ok |= hmac.compare_digest(candidate, known)
        if not ok:
            raise AuthenticationError("Incorrect API key provided.")


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a client sent: ``Authorization: Bearer KEY`` (OpenAI, Ollama) or ``x-api-key`` (Anthropic)."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return x_api_key or None
