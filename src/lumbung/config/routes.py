"""Routes: a public model name -> ordered tiers of provider targets, and the start-up checks across
providers, routes and the egress policy.

Cross-references (a route naming an unknown provider, a target outside the egress policy) are checked
by ``check_gateway`` when Settings is validated; its errors carry the path of the offending entry so
``load_settings`` can name the config line.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lumbung.config.providers import (
    LOCAL_JURISDICTION,
    LOCAL_PROVIDER,
    ProviderConfig,
    allowed,
    jurisdiction_of,
)
from lumbung.config.recording import RouteRecordConfig, ShadowConfig


class GatewayConfigError(ValueError):
    """A cross-reference problem; ``loc`` is the path of the entry at fault (for the config line)."""

    def __init__(self, message: str, loc: tuple[Any, ...]) -> None:
        super().__init__(message)
        self.loc = loc


class TargetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str = Field(description="`provider/model`: the model id as that provider names it.")
    weight: float = Field(default=1.0, gt=0, description="Share of traffic within its tier.")

    @property
    def provider(self) -> str:
        return self.target.split("/", 1)[0]

    @property
    def model(self) -> str:
        return self.target.split("/", 1)[1]

    @field_validator("target")
    @classmethod
    def _shape(cls, value: str) -> str:
        provider, _, model = value.partition("/")
        if not provider or not model:
            raise ValueError("must look like `provider/model`")
        return value


class RouteConfig(BaseModel):
    """A public model name -> ordered tiers of targets. Tier 1 serves while any of it is healthy."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Public model name clients send in `model`.")
    aliases: list[str] = Field(default_factory=list, description="Other names that reach this route.")
    tiers: list[list[TargetConfig]] = Field(
        min_length=1,
        description="Ordered tiers; each a list of `provider/model` strings or `{target, weight}`.",
    )
    prefix_affinity: bool = Field(
        default=False,
        description="Send requests sharing a long prompt prefix to the same target (replica prefix caches).",
    )
    egress: list[str] | None = Field(
        default=None,
        description="Jurisdictions this route's data may go to (default: the server's `egress`).",
    )
    affinity_load_factor: float = Field(
        default=1.25,
        ge=1.0,
        description="With `prefix_affinity`: a target takes a prefix's requests until it holds more than "
        "this times its fair share of the tier's requests in flight, then they spill to the next "
        "target for that prefix (consistent hashing with bounded loads).",
    )
    passthrough: bool = Field(
        default=True,
        description="When every target is OpenAI-compatible, forward OpenAI requests and answers as bytes "
        "(only `model` rewritten; the upstream validates). Off: lumbung parses and re-renders them.",
    )
    retry_budget: float = Field(
        default=0.2, ge=0, le=1, description="Retries allowed as a fraction of requests (plus 10 per second)."
    )
    record: RouteRecordConfig | None = Field(
        default=None,
        description="Record a sample of this route's requests and answers for replay "
        "(`{rate: 0.1}`; docs/migration.md). Unset: not recorded (a key may still ask for it).",
    )
    shadow: ShadowConfig | None = Field(
        default=None,
        description="Mirror a fraction of live requests to a candidate in the background and record both "
        "answers in the recording `shadow-NAME` (`{target: local-model, fraction: 0.1}`); the client's "
        "answer is never delayed or changed.",
    )

    @field_validator("record", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        # `record: true` or `record: 0.25` are shorthands for `{rate: 1.0}` and `{rate: 0.25}`.
        if value is True:
            return {"rate": 1.0}
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"rate": value}
        return value

    @field_validator("tiers", mode="before")
    @classmethod
    def _strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [
                [{"target": t} if isinstance(t, str) else t for t in tier] if isinstance(tier, list) else tier
                for tier in value
            ]
        return value

    @field_validator("tiers")
    @classmethod
    def _non_empty(cls, value: list[list[TargetConfig]]) -> list[list[TargetConfig]]:
        if any(not tier for tier in value):
            raise ValueError("a tier must name at least one target")
        return value


def check_gateway(
    providers: list[ProviderConfig],
    routes: list[RouteConfig],
    egress: list[str] | None,
    local_names: set[str],
) -> None:
    """Start-up checks across settings: every target exists and the egress policy holds for all of them."""
    seen: dict[str, int] = {}
    for i, p in enumerate(providers):
        entry = ("providers", i)
        if p.name in seen or (p.name == LOCAL_PROVIDER and p.kind != "local"):
            raise GatewayConfigError(f"provider name {p.name!r} is used twice", (*entry, "name"))
        seen[p.name] = i
        if p.replicas and p.kind != "vllm":
            raise GatewayConfigError(f"provider {p.name!r}: only a vllm provider lists `replicas`", entry)
        if p.kind == "vllm" and not p.replica_urls:
            raise GatewayConfigError(
                f"provider {p.name!r}: a vllm provider needs `replicas` or `base_url`", entry
            )
        if p.kind not in ("local", "vllm") and not p.base_url:
            raise GatewayConfigError(f"provider {p.name!r}: a {p.kind} provider needs `base_url`", entry)
        if p.launch is not None and p.kind != "vllm":
            raise GatewayConfigError(f"provider {p.name!r}: only a vllm provider has `launch`", entry)
        if p.launch is not None and (p.replicas or p.base_url):
            raise GatewayConfigError(
                f"provider {p.name!r}: `launch` sets the replicas; drop `replicas` and `base_url`", entry
            )
        if p.kind != "local" and p.launch is None and not p.jurisdiction:
            raise GatewayConfigError(
                f"provider {p.name!r}: set `jurisdiction` (where its data goes, e.g. ID, US)", entry
            )
    kinds = {p.name: p for p in providers}
    names: set[str] = set(local_names)
    for r, route in enumerate(routes):
        for n, name in enumerate([route.name, *route.aliases]):
            if name in names:
                loc: tuple[Any, ...] = ("routes", r, "name") if n == 0 else ("routes", r, "aliases", n - 1)
                raise GatewayConfigError(f"model name {name!r} is used twice", loc)
            names.add(name)
        for t, tier in enumerate(route.tiers):
            for k, target in enumerate(tier):
                loc = ("routes", r, "tiers", t, k)
                provider = kinds.get(target.provider)
                if provider is None and target.provider != LOCAL_PROVIDER:
                    raise GatewayConfigError(
                        f"route {route.name!r}: unknown provider {target.provider!r} in {target.target!r}",
                        loc,
                    )
                is_local = provider is None or provider.kind == "local"
                if is_local and target.model not in local_names:
                    raise GatewayConfigError(
                        f"route {route.name!r}: no local model {target.model!r} (see `models`)", loc
                    )
                where = LOCAL_JURISDICTION if provider is None else jurisdiction_of(provider)
                for policy, scope in ((route.egress, f"route {route.name!r}"), (egress, "the server")):
                    if not allowed(where, policy):
                        raise GatewayConfigError(
                            f"egress policy: {scope} may send data only to {policy}, but target "
                            f"{target.target!r} is in jurisdiction {where!r}",
                            loc,
                        )
    for r, route in enumerate(routes):
        if route.shadow is not None:
            _check_shadow(route, ("routes", r, "shadow", "target"), routes, kinds)


def _check_shadow(
    route: RouteConfig,
    loc: tuple[Any, ...],
    routes: list[RouteConfig],
    kinds: dict[str, ProviderConfig],
) -> None:
    """A shadow's candidate exists, is not the route itself, and every target it may reach is one the
    route's data may go to: mirrored requests carry the live route's data."""
    assert route.shadow is not None
    name = route.shadow.target
    candidate = next((r for r in routes if name in (r.name, *r.aliases)), None)
    if candidate is route:
        raise GatewayConfigError(f"route {route.name!r}: a route cannot shadow itself", loc)
    if candidate is None:
        # A local model (configured, or in the store: the server checks it exists when it starts);
        # it never leaves this machine.
        return
    for tier in candidate.tiers:
        for target in tier:
            provider = kinds.get(target.provider)
            where = LOCAL_JURISDICTION if provider is None else jurisdiction_of(provider)
            if not allowed(where, route.egress):
                raise GatewayConfigError(
                    f"egress policy: route {route.name!r} may send data only to {route.egress}, but its "
                    f"shadow target {name!r} reaches {target.target!r} in jurisdiction {where!r}",
                    loc,
                )
