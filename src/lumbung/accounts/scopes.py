"""A virtual key's scopes, as the gateway applies them to the request it serves: which public names
the key may ask for (``routes``, ``models``) and where its data may go (``egress``).

The gateway finds the key of the request it serves through the request's record (record.py), as it
finds where to note attempts; work outside any request (the drill, ``lumbung run``, shadow copies,
which carry a record of their own) and config-file keys have no policy and are not scoped.

- ``routes`` and ``models`` together are one allow-list of public names: a key may use a name when
  the route it resolves to is listed by its name or any alias (so listing a model allows its
  aliases). Empty both: any name.
- ``egress``: jurisdictions the key's data may go to, on top of the route's and the server's own
  policies. Local models never send data anywhere and are always allowed. Targets elsewhere are
  skipped, as if absent: failover goes on among the rest; a route with none left is a 403.
"""

from __future__ import annotations

from collections.abc import Iterable

from lumbung import record
from lumbung.accounts.policy import KeyPolicy
from lumbung.config import allowed


def current() -> KeyPolicy | None:
    """The policy of the key of the request being served, None when it has none."""
    rec = record.current.get()
    caller = rec.caller if rec is not None else None
    return caller.policy if caller is not None else None


def names_allowed(policy: KeyPolicy | None, names: Iterable[str]) -> bool:
    """Whether ``policy`` lets its key use a route known by ``names`` (its name and aliases)."""
    if policy is None or not (policy.routes or policy.models):
        return True
    listed = (*policy.routes, *policy.models)
    return any(name in listed for name in names)


def egress_allowed(policy: KeyPolicy | None, jurisdiction: str) -> bool:
    """Whether ``policy`` lets its key's data go to a provider in ``jurisdiction``."""
    return policy is None or not policy.egress or allowed(jurisdiction, list(policy.egress))


def scope_text(policy: KeyPolicy) -> str:
    return ", ".join((*policy.routes, *policy.models))
