"""Who is calling: the keys of the config file first (no database on that path), then the virtual
keys of the key store (accounts/virtual.py).

Virtual keys are honoured where keys are configured at all (``api_keys`` or ``admin_api_keys``), as
LiteLLM's need a master key: a server with no configured keys answers everyone, and reads no key
store. A virtual key is an API key, never an operator key.
"""

from __future__ import annotations

from lumbung.accounts.keys import OPEN, Caller, KeyRing, digest, missing_key, operator_key_required
from lumbung.accounts.virtual import VirtualKeys
from lumbung.errors import AuthenticationError


class Authenticator:
    def __init__(self, ring: KeyRing, virtual: VirtualKeys | None = None) -> None:
        self.ring = ring
        self.virtual = virtual

    async def check(self, presented: str | None, *, admin: bool = False) -> Caller:
        """The caller, or 401 (no key, an unknown, revoked or expired one), or 403 (``admin`` and the
        key is not an operator key)."""
        ring = self.ring
        if not ring.enabled:
            return OPEN
        if not presented:
            raise missing_key()
        candidate = digest(presented)
        caller = ring.match(candidate, admin=admin)
        if caller is not None:
            return caller
        if self.virtual is not None:
            await self.virtual.fresh()
            key = self.virtual.find(candidate)
            if key is not None:
                if admin:
                    raise operator_key_required()
                return Caller(owner=key.id, sees_all=False, policy=key.policy)
        raise AuthenticationError("Incorrect API key provided.")
