"""Providers: where a route's targets live, and the timeouts and circuit breaker of each.

Part of the leaf ``lumbung.config`` package: it imports nothing of lumbung, so engines, the gateway
and settings can all use these types without importing one another.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lumbung.config.vllm import FleetConfig, LaunchConfig

LOCAL_PROVIDER = "local"
LOCAL_JURISDICTION = "local"


class Timeouts(BaseModel):
    """Seconds; each bounds one phase of an upstream call."""

    model_config = ConfigDict(extra="forbid")

    connect: float = Field(default=5.0, gt=0, description="To open a connection to the provider.")
    first_token: float = Field(
        default=60.0, gt=0, description="From sending the request to the first content of the answer."
    )
    idle: float = Field(default=30.0, gt=0, description="Between two pieces of a streamed answer.")
    total: float = Field(default=600.0, gt=0, description="For the whole call.")


class CircuitConfig(BaseModel):
    """The circuit breaker of each of a provider's targets."""

    model_config = ConfigDict(extra="forbid")

    failures_to_open: int = Field(default=3, ge=1, description="Consecutive failures that open the circuit.")
    open_for: float = Field(default=10.0, gt=0, description="Seconds open before one probe request may pass.")
    probe_timeout: float = Field(
        default=10.0, gt=0, description="Seconds the probe may take to its first token (its own timeout)."
    )


class ProviderConfig(BaseModel):
    """Where targets live: the in-process engine, an OpenAI-compatible server, or Anthropic's API."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$", description="Name used in route targets (`name/model`).")
    kind: Literal["local", "openai", "anthropic", "vllm"] = Field(
        description="`local`: the in-process engine; `openai`: any OpenAI-compatible server (vLLM, SGLang, "
        "llama-server, Ollama, DashScope, DeepSeek, OpenAI); `anthropic`: the Anthropic Messages API; "
        "`vllm`: one or more vLLM replicas (`replicas`), balanced on their own load metrics."
    )
    base_url: str | None = Field(
        default=None, description="API base, e.g. `http://10.0.0.5:8000/v1` or `https://api.anthropic.com`."
    )
    replicas: list[str] = Field(
        default_factory=list,
        description="`vllm`: the API base of each replica, e.g. `http://10.0.0.5:8000/v1` (default: `base_url`).",
    )
    fleet: FleetConfig = Field(
        default_factory=FleetConfig, description="`vllm`: how replicas are watched and when one is full."
    )
    launch: LaunchConfig | None = Field(
        default=None,
        description="`vllm`: start and supervise `vllm serve` processes on this machine as the replicas "
        "(then `replicas` and `jurisdiction` are implied: its own ports, `local`).",
    )
    api_key_env: str | None = Field(
        default=None, description="Environment variable holding the API key (never the key itself)."
    )
    jurisdiction: str | None = Field(
        default=None,
        description="Where data sent to this provider goes: `local`, or a country code such as `ID`, "
        "`CN`, `US`. Required for remote providers; `local` providers are always `local`.",
    )
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Connect / first token / idle / total.")
    circuit: CircuitConfig = Field(default_factory=CircuitConfig, description="Circuit breaker per target.")
    max_connections: int = Field(default=256, ge=1, description="Pooled keep-alive connections at most.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers sent on every call.")
    cut_off_cooldown: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds a provider stays marked cut off after a region/account refusal.",
    )

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    @field_validator("replicas")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} must start with http:// or https://")
        if len(set(value)) != len(value):
            raise ValueError("a replica is listed twice")
        return [url.rstrip("/") for url in value]

    @property
    def replica_urls(self) -> list[str]:
        """A vLLM provider's replicas (its ``base_url`` alone when none are listed)."""
        if self.launch is not None:
            return self.launch.urls()
        return self.replicas or ([self.base_url] if self.base_url else [])


def jurisdiction_of(provider: ProviderConfig) -> str:
    """Where its data goes: processes lumbung launches on this machine are ``local``."""
    if provider.kind == "local" or provider.launch is not None:
        return LOCAL_JURISDICTION
    return str(provider.jurisdiction)


def allowed(jurisdiction: str, egress: list[str] | None) -> bool:
    """Local data never leaves the machine, so `local` is always allowed."""
    return egress is None or jurisdiction == LOCAL_JURISDICTION or jurisdiction in egress
