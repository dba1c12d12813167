"""The one settings object.

Every option is declared once, here, with its documentation. Values come from (lowest to highest):
defaults, the YAML config file, ``LUMBUNG_*`` environment variables, command-line flags.
``load_settings`` merges them, validates loudly, and remembers where each value came from
(``lumbung config`` prints that).
"""

from __future__ import annotations

import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from lumbung.config import (
    EMBEDDED_DEFAULT_ID,
    EMBEDDED_GEMMA_ID,
    AmxMode,
    KeyLimitsConfig,
    KvCacheType,
    ModelConfig,
    ProviderConfig,
    RecordingConfig,
    RouteConfig,
    SpeculativeConfig,
    check_gateway,
)
from lumbung.config.prices import Prices, check_prices
from lumbung.errors import ConfigError

# The embedded models (store/embedded.py): the default, and Gemma 3 270M beside it.
DEFAULT_MODEL_ID = EMBEDDED_DEFAULT_ID
DEFAULT_MODEL_ALIASES = ["default"]
GEMMA_MODEL_ID = EMBEDDED_GEMMA_ID


def _default_memory_budget_mb() -> int:
    """80% of this machine's memory: room for the OS and the server itself."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8192
    return max(512, int(total * 0.8) // 2**20)


def _default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    home: Path = Field(
        default_factory=lambda: Path.home() / ".lumbung",
        description="Data directory: models, database, recordings.",
    )
    host: str = Field(default="127.0.0.1", description="Address the server binds to.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port the server listens on.")
    api_keys: list[str] = Field(
        default_factory=list,
        description="API keys clients must send as `Authorization: Bearer KEY` "
        "(or sha256:HEX digests of them). Empty: no authentication.",
    )
    admin_api_keys: list[str] = Field(
        default_factory=list,
        description="Operator keys (or sha256:HEX digests): the only keys that may pull and delete "
        "models and read provider status and metrics (`/api/pull`, `/api/delete`, `/admin/providers`, "
        "`/metrics`); they also work as API keys. When `api_keys` are set and this is empty, those actions are refused.",
    )
    allow_no_auth: bool = Field(
        default=False, description="Allow binding a non-loopback address with no API key."
    )
    serve_default_model: bool = Field(
        default=True,
        description="Serve the embedded models: the default (smollm2:135m, alias `default`, loaded at "
        "start-up) and gemma3:270m (loaded on first use).",
    )
    models: list[ModelConfig] = Field(default_factory=list, description="Local GGUF models to serve.")
    threads: int = Field(default_factory=_default_threads, ge=1, description="CPU threads per engine.")
    amx: AmxMode = Field(
        default="auto",
        description="llama.cpp's Intel AMX kernels, in llama-cpp-python builds that have them. They "
        "crash some machines (llama.cpp issue 20824), which would end the server: auto tries each "
        "model once in a child process and uses them only if it survives; on: always; off: never.",
    )
    context_size: int | None = Field(
        default=None,
        ge=64,
        description="Tokens one request may use, prompt and answer. Default: each model's trained "
        "context (from its GGUF), lowered where the memory budget cannot hold `parallel` requests of "
        "it; never past the trained context (a model's `rope_scaling` allows that).",
    )
    parallel: int = Field(default=4, ge=1, le=64, description="Concurrent sequences per model.")
    batch_size: int = Field(default=512, ge=16, description="Most tokens decoded in one engine step.")
    max_queue: int = Field(
        default=64, ge=0, description="Requests waiting per model beyond `parallel`; more get 429."
    )
    prefix_cache_mb: float = Field(
        default=256.0,
        ge=0,
        description="KV cache memory (MiB) per model that keeps finished requests' tokens, so a new "
        "request starting with the same tokens (a shared system prompt, a growing chat) skips "
        "recomputing them; least recently used first out. 0: off.",
    )
    prefix_cache_persist_mb: float = Field(
        default=0.0,
        ge=0,
        description="Disk (MiB per model) for cached prefixes of 256 tokens or more, saved when a model "
        "unloads (the server stops, or its keep-alive ends) and read back when it loads, so the first "
        "request after a restart that shares a long system prompt is warm. Files under "
        "HOME/cache/prefix, refused when made by another model or settings. 0: off.",
    )
    kv_cache_type: KvCacheType = Field(
        default="f16",
        description="KV cache element type of local models: f16, q8_0 (about half the memory: twice the "
        "contexts in the same budget) or q4_0 (about a quarter); quantized caches run with flash "
        "attention on. Per model: `kv_cache_type` in its entry. Quality cost: docs/performance.md.",
    )
    speculative: SpeculativeConfig | None = Field(
        default=None,
        description="Speculative decoding for every local model without its own `speculative` "
        "(e.g. `{mode: ngram, max_draft: 8, ngram: 3}`); off unless set. Greedy answers stay the "
        "model's own; a request may switch it with the `speculative` extension field. Mode `draft` "
        "only in a model's own entry (its draft model must share that model's tokenizer).",
    )
    structured_fast_forward: bool = Field(
        default=True,
        description="Local models decode the tokens a grammar forces (a JSON schema's keys and "
        "punctuation, a forced tool call's name) together in one step instead of one by one; answers "
        'are the same either way (docs/performance.md, "Fast-forwarded structured output").',
    )
    deterministic: bool = Field(
        default=False,
        description="Local models give every request the same text whatever else runs beside it (greedy "
        "decoding byte for byte as when alone): each sequence decoded on its own, prompts read in fixed "
        "chunks, each sequence in its own KV stream, no prefix cache, no speculation. Costs throughput under "
        'concurrency (docs/performance.md, "Deterministic mode"). Per model: `deterministic`.',
    )
    memory_budget_mb: int = Field(
        default_factory=_default_memory_budget_mb,
        ge=0,
        description="Most memory (MiB) the loaded local models may use together (weights and KV "
        "cache); loading one more unloads the least recently used idle model. Default: 80% of RAM.",
    )
    request_timeout: float = Field(
        default=600.0, gt=0, description="Seconds a request may run before it is ended."
    )
    stream_keepalive: float = Field(
        default=15.0,
        ge=0,
        description="Seconds a streamed answer waits for its first token before it starts without it "
        "and then sends a keep-alive (an SSE comment, an Anthropic `ping`, an empty Ollama line) each "
        "time this long passes, so clients and proxies do not give up while a long prompt is read. "
        "0: never (the answer waits for its first token).",
    )
    keep_alive: float = Field(
        default=300.0,
        description="Seconds an idle model stays loaded (negative: forever). Ollama clients may change "
        "it per request (`keep_alive`) until the model unloads.",
    )
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 beyond)."
    )
    offline: bool = Field(
        default=False,
        description="Make no network call at all: pulls only succeed for models already in the store, "
        "and the hub libraries' own offline switches (HF_HUB_OFFLINE, ...) are set.",
    )
    hf_endpoint: str | None = Field(
        default=None, description="Hugging Face Hub URL (default: $HF_ENDPOINT, else https://huggingface.co)."
    )
    modelscope_endpoint: str | None = Field(
        default=None,
        description="ModelScope URL (default: $MODELSCOPE_ENDPOINT, else https://modelscope.cn).",
    )
    log_prompts: bool = Field(default=False, description="Log prompts and answers (off: never).")
    providers: list[ProviderConfig] = Field(
        default_factory=list,
        description="Upstream providers routes may use (the in-process engine is always provider `local`).",
    )
    routes: list[RouteConfig] = Field(
        default_factory=list, description="Public model names served by ordered tiers of provider targets."
    )
    egress: list[str] | None = Field(
        default=None,
        description="Jurisdictions any request's data may go to (e.g. `[ID]`); unset: any. `local` always.",
    )
    database_url: str | None = Field(
        default=None,
        description="The state database (usage ledger, stored responses) as an SQLAlchemy async URL, "
        "e.g. `postgresql+asyncpg://user:pass@host/lumbung` for several instances sharing one "
        "(`pip install 'lumbung[postgres]'`). Unset: SQLite (WAL) at `home`/lumbung.db.",
    )
    usage_ledger: bool = Field(
        default=True,
        description="Keep the usage ledger: one row per accepted request in the state database "
        "(`lumbung usage`, `/admin/usage`, budgets). Off: no rows, and budgets are not enforced.",
    )
    ledger_flush_ms: int = Field(
        default=200,
        ge=1,
        description="The ledger writes its queued rows this often (ms): a `kill -9` loses at most the "
        "requests that ended in this window (docs/accounts.md).",
    )
    ledger_batch_rows: int = Field(
        default=500, ge=1, description="The ledger writes at once when this many rows are queued."
    )
    prices: Prices = Field(
        default_factory=Prices,
        description="Prices per target (per million tokens; a local model's own cost per hour) and a "
        "reference price per route (the API its traffic left): `lumbung usage` shows spend and savings; "
        "budgets count spend.",
    )
    recording: RecordingConfig = Field(
        default_factory=RecordingConfig,
        description="Rules for every recording of live traffic (routes' `record`, keys' `--record`, "
        "shadow pairs): redaction, size caps, retention (docs/migration.md).",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis (`redis://HOST:PORT/DB`, `rediss://` for TLS) shared by several lumbung "
        "instances behind one load balancer: rate limits count across all of them, and a provider "
        "cut off or a circuit opened on one is known to all within a second (docs/deploy.md). Unset: "
        "each instance keeps its own.",
    )
    key_limits: KeyLimitsConfig | None = Field(
        default=None,
        description="Rate limits of each key from `api_keys`/`admin_api_keys` (each key its own "
        "count; with no keys configured, all callers together): `{rpm, tpm, max_concurrent}`. "
        "Virtual keys carry their own limits (`lumbung keys create --rpm ...`). docs/accounts.md.",
    )
    log_level: str = Field(default="info", description="Log level: debug, info, warning, error.")
    otlp_endpoint: str | None = Field(
        default=None,
        description="OpenTelemetry collector (OTLP/HTTP) base URL, e.g. `http://127.0.0.1:4318`: one span "
        "per request is exported to its /v1/traces. Unset: no traces. Needs `pip install 'lumbung[otel]'`.",
    )

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://HOST:PORT/DB, rediss://... (TLS) or unix://PATH URL")
        return value

    @field_validator("speculative")
    @classmethod
    def _no_global_draft(cls, value: SpeculativeConfig | None) -> SpeculativeConfig | None:
        if value is not None and value.mode == "draft":
            raise ValueError(
                "mode `draft` is set per model (a draft model must share the served model's tokenizer, "
                "which no one draft model does for every model): put it in the model's `speculative`"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be one of debug, info, warning, error")
        return value.lower()

    @model_validator(mode="after")
    def _gateway(self) -> Settings:
        local = {m for spec in self.models for m in (spec.id, *spec.aliases)}
        local |= {spec.adapter_id(a) for spec in self.models for a in spec.adapters}
        if self.serve_default_model:
            local |= {DEFAULT_MODEL_ID, *DEFAULT_MODEL_ALIASES, GEMMA_MODEL_ID}
        check_gateway(self.providers, self.routes, self.egress, local)
        routes = local | {r.name for r in self.routes}  # the ledger names a route by its name, not an alias
        check_prices(self.prices, {"local", *(p.name for p in self.providers)}, routes)
        return self

    # Where each value came from (load_settings fills these): for messages at start-up.
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)
    _config: Path | None = PrivateAttr(default=None)
    _lines: dict[tuple[Any, ...], int] = PrivateAttr(default_factory=dict)

    def origin(self, *loc: str | int) -> str:
        """Where the value at ``loc`` (e.g. ``"models", 0, "path"``) was set: ``FILE:LINE`` for the
        config file, else ``env LUMBUNG_X``, ``flag`` or ``default``."""
        src = self._sources.get(str(loc[0]), "default") if loc else "default"
        if src.startswith("config") and (line := _line_of(self._lines, loc)) is not None:
            return f"{self._config}:{line}"
        return src

    @property
    def is_loopback(self) -> bool:
        return self.host in {"127.0.0.1", "localhost", "::1"} or self.host.startswith("127.")


ENV_PREFIX = "LUMBUNG_"


def _env_value(name: str, annotation: Any, raw: str) -> Any:
    """Decode one environment variable: lists are comma-separated, objects are JSON."""
    shape = _list_shape(annotation)
    if shape is None:
        return yaml.safe_load(raw) if _is_object(annotation) else raw
    args = typing.get_args(shape)
    if not args or args[0] is str:
        return [part.strip() for part in raw.split(",") if part.strip()]
    return yaml.safe_load(raw)


def _is_object(annotation: Any) -> bool:
    """Whether a setting is a mapping of its own (a model, also inside ``X | None``)."""
    arms = typing.get_args(annotation) or (annotation,)
    return any(isinstance(arm, type) and issubclass(arm, BaseModel) for arm in arms)


def _list_shape(annotation: Any) -> Any:
    """The list type a setting accepts, also inside ``X | None`` or ``Annotated`` (None: no list)."""
    if annotation is list or typing.get_origin(annotation) is list:
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, typing.Annotated):
        arms = typing.get_args(annotation)
        if typing.get_origin(annotation) is typing.Annotated:
            arms = arms[:1]
        for arm in arms:
            if (shape := _list_shape(arm)) is not None:
                return shape
    return None


def _load_yaml(path: Path) -> tuple[dict[str, Any], dict[tuple[Any, ...], int]]:
    """Read a YAML mapping and the line number of every key path in it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    lines: dict[tuple[Any, ...], int] = {}

    def walk(n: yaml.Node, loc: tuple[Any, ...]) -> None:
        lines[loc] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                lines[(*loc, key.value)] = key.start_mark.line + 1
                walk(value, (*loc, key.value))
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, (*loc, i))

    if node is not None:
        walk(node, ())
    return data, lines


def _line_of(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def load_settings(
    config: Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: typing.Mapping[str, str] | None = None,
) -> tuple[Settings, dict[str, str]]:
    """Merge defaults, config file, environment and flags; return settings and each value's source."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    lines: dict[tuple[Any, ...], int] = {}
    if config is None and environ.get(ENV_PREFIX + "CONFIG"):
        config = Path(environ[ENV_PREFIX + "CONFIG"])
    if config is not None:
        data, lines = _load_yaml(config)
        unknown = [k for k in data if k not in Settings.model_fields]
        if unknown:
            where = ", ".join(f"{k!r} (line {lines.get((k,), '?')})" for k in unknown)
            raise ConfigError(f"{config}: unknown setting(s): {where}")
        for key, value in data.items():
            values[key] = value
            sources[key] = f"config {config}:{lines.get((key,), '?')}"
    for name, info in Settings.model_fields.items():
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = _env_value(name, info.annotation, raw)
            sources[name] = f"env {ENV_PREFIX}{name.upper()}"
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
            sources[name] = "flag"
    try:
        settings = Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            # Cross-field checks name the entry at fault in their error (GatewayConfigError.loc).
            loc = tuple(err["loc"]) + tuple(getattr((err.get("ctx") or {}).get("error"), "loc", ()))
            name = ".".join(str(p) for p in loc)
            src = sources.get(str(loc[0]), "default") if loc else "settings"
            line = _line_of(lines, loc) if src.startswith("config") else None
            where = f"{config}:{line}" if line else src
            problems.append(f"{name}: {err['msg']} ({where})")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems)) from exc
    for name in Settings.model_fields:
        sources.setdefault(name, "default")
    settings._sources, settings._config, settings._lines = sources, config, lines
    return settings, sources
