"""The gateway's live view of providers and targets: cut-off marks, breakers, cool-downs, in-flight
counts. One ``TargetState`` per ``provider/model`` is shared by every route that names it, so what one
route learns about a target (it fails, it is rate limited) every route knows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from lumbung.clock import Clock
from lumbung.config import Timeouts
from lumbung.engines.base import Backend
from lumbung.engines.vllm import Replica
from lumbung.engines.vllm_metrics import ReplicaLoad
from lumbung.gateway.balancer import DEFAULT_LOAD_FACTOR
from lumbung.gateway.breaker import Breaker, BreakerPolicy, BreakerState
from lumbung.gateway.retry import RetryBudget


class Marks(Protocol):
    """Told of what this instance finds out about providers, to tell the other instances
    (gateway/shared.py: through Redis)."""

    def cut_off(self, provider: ProviderState) -> None: ...

    def opened(self, target: TargetState) -> None: ...


@dataclass(eq=False)
class ProviderState:
    name: str
    kind: str
    jurisdiction: str
    backend: Backend
    timeouts: Timeouts
    clock: Clock
    base_url: str | None = None
    cut_off_cooldown: float = 3600.0
    cut_off_until: float = 0.0
    cut_off_reason: str | None = None
    cut_offs: int = 0
    replica: Replica | None = None  # a vLLM replica: its own metrics and health, read by its fleet
    marks: Marks | None = None  # where a cut-off or an opened circuit found here is told (shared state)

    @property
    def is_cut_off(self) -> bool:
        return self.clock() < self.cut_off_until

    def cut_off(self, reason: str) -> None:
        self.cut_off_until = self.clock() + self.cut_off_cooldown
        self.cut_off_reason = reason[:300]
        self.cut_offs += 1

    def learn_cut_off(self, reason: str, seconds: float) -> bool:
        """Another instance found this provider cut off, for ``seconds`` more; False: known already."""
        until = self.clock() + seconds
        if until <= self.cut_off_until:
            return False
        self.cut_off_until = until
        self.cut_off_reason = reason[:300]
        self.cut_offs += 1
        return True

    def clear_cut_off(self) -> None:
        self.cut_off_until = 0.0


@dataclass(eq=False)
class TargetState:
    provider: ProviderState
    model: str
    breaker: Breaker
    inflight: int = 0
    requests: int = 0
    failures: int = 0
    cool_until: float = 0.0
    last_error: str | None = None

    @property
    def key(self) -> str:
        return f"{self.provider.name}/{self.model}"

    def blocked_for(self) -> float:
        """Seconds until this target may take a request again (0: now; inf: not while cut off is
        unknown to end soon)."""
        now = self.provider.clock()
        replica = self.provider.replica
        if replica is not None and not replica.accepting(now):
            # Draining, down or asleep: not worth a pause within the request (the next pass would wait
            # at least a read); other replicas or tiers serve meanwhile.
            return replica.config.stale_after
        if self.cool_until <= now and self.provider.cut_off_until <= now and self.breaker.closed:
            return 0.0  # the common case, on every request's path: no list, no clock reads
        waits = [self.cool_until - now, self.provider.cut_off_until - now]
        if self.breaker.state is BreakerState.OPEN:
            waits.append(self.breaker.opened_at + self.breaker.policy.open_for - now)
        elif not self.breaker.available():
            waits.append(0.05)  # a probe is in flight
        return max(0.0, *waits)

    def snapshot(self) -> dict[str, Any]:
        now = self.provider.clock()
        replica = self.provider.replica
        return {
            "target": self.key,
            "breaker": self.breaker.state.value,
            "inflight": self.inflight,
            "requests": self.requests,
            "failures": self.failures,
            "rate_limited_for_s": round(max(0.0, self.cool_until - now), 1),
            "last_error": self.last_error,
            **({"replica": replica.snapshot(now)} if replica is not None else {}),
        }


@dataclass(eq=False)
class Member:
    """A target as one route's tier holds it, with that route's weight."""

    state: TargetState
    weight: float

    @property
    def key(self) -> str:
        return self.state.key

    @property
    def inflight(self) -> int:
        return self.state.inflight

    @property
    def load(self) -> ReplicaLoad | None:
        replica = self.state.provider.replica
        return None if replica is None else replica.fresh_load(self.state.provider.clock())

    @property
    def saturated(self) -> bool:
        replica = self.state.provider.replica
        return replica is not None and replica.saturated(self.state.provider.clock())


@dataclass(eq=False)
class Route:
    name: str
    tiers: list[list[Member]]
    aliases: list[str] = field(default_factory=list)
    prefix_affinity: bool = False
    affinity_load_factor: float = DEFAULT_LOAD_FACTOR
    passthrough: bool = True
    egress: list[str] | None = None
    budget: RetryBudget = field(default_factory=RetryBudget)
    guarded: bool = True  # False: a local model reached by its own name, served directly as before

    @property
    def model(self) -> str:
        """The name answers carry in their ``model`` field."""
        return self.name

    def members(self) -> list[Member]:
        return [m for tier in self.tiers for m in tier]


def new_target(provider: ProviderState, model: str, policy: BreakerPolicy) -> TargetState:
    return TargetState(provider, model, Breaker(policy, provider.clock))
