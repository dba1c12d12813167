"""Keys whose callers carry a virtual key's policy, for in-process tests of what reads
``Caller.policy`` (limits) without the key store: config-file keys, each given a ``KeyPolicy``."""

from __future__ import annotations

import dataclasses

from lumbung.accounts.auth import Authenticator
from lumbung.accounts.keys import Caller, KeyRing, digest
from lumbung.accounts.policy import KeyPolicy
from tests.support.inprocess import InProcess


class PolicyRing(KeyRing):
    def __init__(self, policies: dict[str, KeyPolicy]) -> None:
        super().__init__(list(policies))
        self.policies = {digest(key): policy for key, policy in policies.items()}

    def match(self, candidate: str, *, admin: bool = False) -> Caller | None:
        caller = super().match(candidate, admin=admin)
        if caller is None:
            return None
        return dataclasses.replace(caller, policy=self.policies.get(candidate))


def use_policies(lb: InProcess, policies: dict[str, KeyPolicy]) -> None:
    """The app ``lb`` checks keys with ``policies`` from now on (the boundary and the routes)."""
    ring = PolicyRing(policies)
    lb.app.state.lumbung.keys = ring
    # The boundary (surfaces/http.py: App) checks config keys (this ring) before the key store's.
    lb.app._front.keys = Authenticator(ring)  # type: ignore[attr-defined]
