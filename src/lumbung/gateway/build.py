"""Assembles the gateway from settings: a backend per provider, shared target states, routes.

The backend constructor is a parameter (``make_backend``) so tests and ``lumbung drill`` can put
something else between the gateway and a provider without patching.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from lumbung.clock import TimerClock, monotonic
from lumbung.config import LOCAL_PROVIDER, ProviderConfig, Timeouts, jurisdiction_of
from lumbung.engines.base import Backend
from lumbung.engines.vllm import Fleet, Replica
from lumbung.engines.vllm_launch import Launcher
from lumbung.errors import ConfigError
from lumbung.gateway.breaker import BreakerPolicy
from lumbung.gateway.retry import RetryBudget
from lumbung.gateway.router import Gateway, Watcher
from lumbung.gateway.state import Member, ProviderState, Route, TargetState, new_target
from lumbung.settings import Settings

BackendFactory = Callable[[ProviderConfig, "str | None"], Backend]


def default_backend(config: ProviderConfig, api_key: str | None) -> Backend:
    """An ``anthropic`` provider's backend, or an OpenAI-compatible one (a vLLM replica is one too:
    ``build_gateway`` calls this once per replica, with that replica's ``base_url``)."""
    if config.kind == "anthropic":
        from lumbung.engines.http_anthropic import AnthropicHTTPBackend

        return AnthropicHTTPBackend(config, api_key)
    from lumbung.engines.http_openai import OpenAIHTTPBackend

    return OpenAIHTTPBackend(config, api_key)


def api_key(config: ProviderConfig, environ: Mapping[str, str]) -> str | None:
    if config.api_key_env is None:
        return None
    value = environ.get(config.api_key_env)
    if not value:
        raise ConfigError(
            f"provider {config.name!r}: the environment variable {config.api_key_env} is not set"
        )
    return value


def build_gateway(
    settings: Settings,
    local: Backend,
    *,
    make_backend: BackendFactory = default_backend,
    environ: Mapping[str, str] | None = None,
    clock: TimerClock = monotonic,
    breaker: BreakerPolicy | None = None,
) -> Gateway:
    environ = os.environ if environ is None else environ
    whole = Timeouts(
        first_token=settings.request_timeout, idle=settings.request_timeout, total=settings.request_timeout
    )
    providers = {LOCAL_PROVIDER: ProviderState(LOCAL_PROVIDER, "local", "local", local, whole, clock)}
    # A vLLM provider is one provider state per replica, each its own target in the routes naming it.
    replicas: dict[str, list[ProviderState]] = {}
    fleets: list[Watcher] = []
    for cfg in settings.providers:
        if cfg.launch is not None:
            fleets.append(Launcher.of(cfg.name, cfg.launch, settings.home, clock))
        if cfg.kind == "vllm":
            fleet = Fleet.of(cfg, api_key(cfg, environ), clock)
            fleets.append(fleet)
            replicas[cfg.name] = [
                _replica_state(cfg, r, make_backend, environ, clock) for r in fleet.replicas
            ]
            continue
        backend = local if cfg.kind == "local" else make_backend(cfg, api_key(cfg, environ))
        providers[cfg.name] = ProviderState(
            cfg.name,
            cfg.kind,
            jurisdiction_of(cfg),
            backend,
            cfg.timeouts,
            clock,
            base_url=cfg.base_url,
            cut_off_cooldown=cfg.cut_off_cooldown,
        )
    circuits = {
        cfg.name: BreakerPolicy(cfg.circuit.failures_to_open, cfg.circuit.open_for, cfg.circuit.probe_timeout)
        for cfg in settings.providers
    }
    # A local target may name a model by an alias; the engine knows models by id.
    local_ids = {name: info.id for info in local.models() for name in (info.id, *info.aliases)}
    targets: dict[str, TargetState] = {}
    routes = []
    for rc in settings.routes:
        tiers = []
        for tier in rc.tiers:
            members = []
            for t in tier:
                policy = breaker or circuits.get(t.provider, BreakerPolicy())
                for provider in replicas.get(t.provider) or [providers[t.provider]]:
                    key = f"{provider.name}/{t.model}"
                    state = targets.get(key)
                    if state is None:
                        model = local_ids.get(t.model, t.model) if provider.kind == "local" else t.model
                        state = targets[key] = new_target(provider, model, policy)
                    members.append(Member(state, t.weight))
            tiers.append(members)
        routes.append(
            Route(
                rc.name,
                tiers,
                aliases=list(rc.aliases),
                prefix_affinity=rc.prefix_affinity,
                affinity_load_factor=rc.affinity_load_factor,
                passthrough=rc.passthrough,
                egress=rc.egress,
                budget=RetryBudget(ratio=rc.retry_budget, clock=clock),
            )
        )
    if settings.redis_url:
        from lumbung.gateway.shared import SharedState

        every = [*providers.values(), *(p for states in replicas.values() for p in states)]
        fleets.append(SharedState(settings.redis_url, every, targets.values()))
    used = {m.state.provider.name for r in routes for m in r.members()}
    shown = [p for name, p in providers.items() if name != LOCAL_PROVIDER or name in used]
    shown += [p for states in replicas.values() for p in states]
    return Gateway(
        [local],
        providers=shown,
        routes=routes,
        egress=settings.egress,
        request_timeout=settings.request_timeout,
        clock=clock,
        watchers=fleets,
    )


def _replica_state(
    cfg: ProviderConfig,
    replica: Replica,
    make_backend: BackendFactory,
    environ: Mapping[str, str],
    clock: TimerClock,
) -> ProviderState:
    one = cfg.model_copy(update={"name": replica.name, "base_url": replica.base_url, "replicas": []})
    return ProviderState(
        replica.name,
        cfg.kind,
        jurisdiction_of(cfg),
        make_backend(one, api_key(cfg, environ)),
        cfg.timeouts,
        clock,
        base_url=replica.base_url,
        cut_off_cooldown=cfg.cut_off_cooldown,
        replica=replica,
    )
