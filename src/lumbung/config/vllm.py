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


class BackoffConfig(BaseModel):
    """Pauses between restarts of a process that keeps ending: ``initial`` doubling up to ``max``."""

    model_config = ConfigDict(extra="forbid")

    initial: float = Field(default=1.0, gt=0, description="Seconds before the first restart.")
    max: float = Field(default=60.0, gt=0, description="The longest pause between restarts.")
    reset_after: float = Field(
        default=60.0,
        gt=0,
        description="Seconds healthy after which the next crash counts as the first again.",
    )


class LaunchConfig(BaseModel):
    """`vllm serve` processes lumbung starts and supervises on this machine, one per replica (ports
    `port`, `port + 1`, ...); their logs go to `HOME/logs/vllm/`."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="What `vllm serve` serves: a Hugging Face id or a local path.")
    replicas: int = Field(default=1, ge=1, le=64, description="Processes to run.")
    host: str = Field(default="127.0.0.1", description="Address each process listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="The first replica's port.")
    tensor_parallel_size: int = Field(
        default=1, ge=1, description="GPUs per replica (`--tensor-parallel-size`)."
    )
    gpu_memory_utilization: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Share of each GPU's memory vLLM may use (`--gpu-memory-utilization`).",
    )
    gpus: list[str] = Field(
        default_factory=list,
        description="`CUDA_VISIBLE_DEVICES` of each replica, e.g. `['0,1', '2,3']` (default: unset).",
    )
    args: list[str] = Field(
        default_factory=list, description="More arguments for `vllm serve`, passed as they are."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment of each process.")
    command: list[str] = Field(
        default_factory=lambda: ["vllm", "serve"],
        min_length=1,
        description="The program and its first arguments.",
    )
    health_interval: float = Field(default=5.0, gt=0, description="Seconds between `/health` checks.")
    startup_timeout: float = Field(
        default=900.0, gt=0, description="Seconds a starting process may take to pass its first health check."
    )
    unhealthy_after: int = Field(
        default=3,
        ge=1,
        description="Failed health checks in a row, once healthy, after which it is restarted.",
    )
    stop_timeout: float = Field(
        default=30.0, gt=0, description="Seconds between SIGTERM (vLLM drains) and SIGKILL at shutdown."
    )
    backoff: BackoffConfig = Field(default_factory=BackoffConfig, description="Restart pauses.")

    @model_validator(mode="after")
    def _gpus_per_replica(self) -> LaunchConfig:
        if self.gpus and len(self.gpus) != self.replicas:
            raise ValueError(f"`gpus` names {len(self.gpus)} device sets for {self.replicas} replicas")
        if self.port + self.replicas - 1 > 65535:
            raise ValueError("the replicas' ports run past 65535")
        return self

    def urls(self) -> list[str]:
        return [f"http://{self.host}:{self.port + i}/v1" for i in range(self.replicas)]

    def argv(self, index: int) -> list[str]:
        """The command line of replica ``index``."""
        return [
            *self.command,
            self.model,
            "--host",
            self.host,
            "--port",
            str(self.port + index),
            "--tensor-parallel-size",
            str(self.tensor_parallel_size),
            "--gpu-memory-utilization",
            str(self.gpu_memory_utilization),
            *self.args,
        ]
