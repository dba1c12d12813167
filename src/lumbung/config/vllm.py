"""vLLM fleets: how lumbung watches a ``kind: vllm`` provider's replicas (their Prometheus ``/metrics``
and ``/health``) and when a replica counts as full.

Part of the leaf ``lumbung.config`` package: it imports nothing of lumbung.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FleetConfig(BaseModel):
    """How a vLLM provider's replicas are watched, and the pressure at which one takes no new work
    while another has room."""

    model_config = ConfigDict(extra="forbid")

    scrape_interval: float = Field(
        default=1.0, gt=0, description="Seconds between reads of each replica's `/metrics` and `/health`."
    )
    scrape_timeout: float = Field(default=2.0, gt=0, description="Seconds one read may take.")
    stale_after: float = Field(
        default=5.0,
        gt=0,
        description="Seconds after which a replica's last metrics are ignored (balancing falls back to "
        "lumbung's own count of requests in flight).",
    )
    metrics_path: str = Field(
        default="/metrics", description="Path of the Prometheus metrics, from the server root."
    )
    health_path: str = Field(
        default="/health",
        description="Path of the health check, from the server root; anything but 200 (vLLM answers 503 "
        "while draining) means no new work.",
    )
    waiting_limit: int = Field(
        default=8,
        ge=1,
        description="Requests waiting in vLLM's own queue (`vllm:num_requests_waiting`) at which a replica "
        "is full: it gets new work only when every replica is full.",
    )
    kv_limit: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description="KV-cache usage (`vllm:kv_cache_usage_perc`, 1 = all blocks) at which a replica is full.",
    )

    @model_validator(mode="after")
    def _stale_after_a_scrape(self) -> FleetConfig:
        if self.stale_after <= self.scrape_interval:
            raise ValueError("`stale_after` must be longer than `scrape_interval`")
        return self
