"""``GET /metrics``: Prometheus series for one app, in a registry of its own (not the process-wide
default), so several apps in one process (tests, the drill) each count only their own requests.

Request series are counted once per request, when its outcome is known (the request record's close,
surfaces/boundary.py); gateway and engine state is read at scrape time (``state.py``). Label values
are bounded: endpoints are the app's own path templates, models the configured route names (a name no
route knows, as a client may send anything, is ``unknown``), providers the configured ones; never a
request id or a key. docs/observability.md lists every series.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from lumbung.gateway.router import Gateway
from lumbung.observe.state import GatewayState
from lumbung.record import RequestRecord
from lumbung.types import Usage

UNKNOWN = "unknown"  # a model no route knows (refused before resolution), an endpoint no route serves
NONE = "none"  # no provider was tried
# The classic text format every Prometheus reads (every name here is a legacy one, so the bytes are
# the same as format 1.0.0's, which only Prometheus 3 knows).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds. Whole answers of a local model take seconds to minutes; refusals and cached answers, ms.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
FIRST_TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


MAX_ROWS = 4096  # kinds of request remembered with their series (see Metrics._row)
_Key = tuple[str, str, str | None, str | None, str, int]


@dataclass(frozen=True, slots=True)
class _Row:
    requests: Counter
    latency: Histogram
    first_token: Histogram
    prompt_tokens: Counter
    completion_tokens: Counter
    cached_tokens: Counter
    refused: Counter | None


def outcome(status: int, error: str | None) -> str:
    """How a request ended, in a handful of values: ``ok``; ``cancelled`` (the client left);
    ``refused`` (429, 503: rate limited, at capacity, no target available); ``client_error`` (other
    4xx); ``error`` (5xx, or a stream that failed after its first byte)."""
    if status == 499 or error in ("client_disconnected", "client_closed_request", "cancelled"):
        return "cancelled"
    if status in (429, 503):
        return "refused"
    if 400 <= status < 500:
        return "client_error"
    if status >= 500 or error is not None:
        return "error"
    return "ok"


class Endpoints:
    """A request path as the endpoint label: the path template of the route that serves it
    (``/v1/responses/{response_id}``), ``unknown`` for a path no route serves."""

    def __init__(self, templates: Iterable[tuple[str, re.Pattern[str] | None]]) -> None:
        self.exact: set[str] = set()
        self.patterns: list[tuple[re.Pattern[str], str]] = []
        for template, pattern in templates:
            if pattern is None:
                self.exact.add(template)
            else:
                self.patterns.append((pattern, template))

    def name(self, path: str) -> str:
        if path in self.exact:
            return path
        for pattern, template in self.patterns:
            if pattern.match(path):
                return template
        return UNKNOWN


class Metrics:
    """The series of one app. ``request`` is on every request's path: a few counter increments and
    histogram observations (microseconds), no I/O."""

    def __init__(self, gateway: Gateway, endpoints: Endpoints) -> None:
        self.gateway = gateway
        self.endpoints = endpoints
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        where = ["surface", "endpoint", "model"]
        self.requests = Counter(
            "lumbung_requests",
            "Requests answered, by API surface, endpoint, model (route), the provider that answered or "
            "was tried last, and outcome.",
            [*where, "provider", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "lumbung_request_duration_seconds",
            "Time from a request's arrival until its answer's last byte went out (or it ended).",
            where,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.first_token = Histogram(
            "lumbung_time_to_first_token_seconds",
            "Time from a request's arrival until the first token of its answer came from the provider.",
            ["surface", "model", "provider"],
            buckets=FIRST_TOKEN_BUCKETS,
            registry=r,
        )
        tokens = ["surface", "model", "provider"]
        self.prompt_tokens = Counter(
            "lumbung_prompt_tokens", "Prompt tokens of answered requests.", tokens, registry=r
        )
        self.completion_tokens = Counter(
            "lumbung_completion_tokens", "Completion tokens of answered requests.", tokens, registry=r
        )
        self.cached_tokens = Counter(
            "lumbung_cached_prompt_tokens",
            "Prompt tokens served from a prefix cache (part of the prompt tokens).",
            tokens,
            registry=r,
        )
        self.refused = Counter(
            "lumbung_refused_requests",
            "Requests refused with 429 (a rate limit, a model at capacity, every target rate limited) or "
            "503 (no target available, a model that cannot load now).",
            ["surface", "model", "status"],
            registry=r,
        )
        self.rate_limited = Counter(
            "lumbung_rate_limited_requests",
            "Requests refused by their key's rate limit, by API surface and the limit reached "
            "(requests, tokens, concurrency).",
            ["surface", "limit"],
            registry=r,
        )
        r.register(GatewayState(gateway))
        self._rows: dict[_Key, _Row] = {}

    def model_label(self, name: str | None) -> str:
        """The route a model name resolves to; ``unknown`` for anything else."""
        if not name:
            return UNKNOWN
        return self.gateway.route_name(name) or UNKNOWN

    def request(
        self,
        *,
        surface: str,
        path: str,
        model: str | None,
        target: str | None,
        status: int,
        error: str | None,
        seconds: float,
        first_token_seconds: float | None = None,
        usage: Usage | None = None,
    ) -> None:
        """Count one finished request. ``target``: ``provider/model`` of the attempt that answered
        (or was tried last); ``usage``: what the answers reported."""
        key = (surface, path, model, target, outcome(status, error), status)
        row = self._rows.get(key)
        if row is None:
            row = self._row(key)
        row.requests.inc()
        row.latency.observe(seconds)
        if row.refused is not None:
            row.refused.inc()
        if first_token_seconds is not None:
            row.first_token.observe(first_token_seconds)
        if usage is not None:
            row.prompt_tokens.inc(usage.prompt_tokens)
            row.completion_tokens.inc(usage.completion_tokens)
            if usage.cached_tokens:
                row.cached_tokens.inc(usage.cached_tokens)

    def _row(self, key: _Key) -> _Row:
        """The series one kind of request updates, looked up once: ``labels()`` costs several times
        an increment, and the kinds are few (bounded labels). Keyed by what the request carries, so
        raw paths and names are mapped to labels only here (a path with an id adds a key, not a
        series: the key cache is cleared when it grows past its bound)."""
        surface, path, model, target, end, status = key
        model_label = self.model_label(model)
        provider = target.partition("/")[0] if target else NONE
        endpoint = self.endpoints.name(path)
        tokens = (surface, model_label, provider)
        row = _Row(
            requests=self.requests.labels(surface, endpoint, model_label, provider, end),
            latency=self.latency.labels(surface, endpoint, model_label),
            first_token=self.first_token.labels(*tokens),
            prompt_tokens=self.prompt_tokens.labels(*tokens),
            completion_tokens=self.completion_tokens.labels(*tokens),
            cached_tokens=self.cached_tokens.labels(*tokens),
            refused=self.refused.labels(surface, model_label, str(status)) if end == "refused" else None,
        )
        if len(self._rows) >= MAX_ROWS:
            self._rows.clear()
        self._rows[key] = row
        return row

    def record(self, rec: RequestRecord) -> None:
        """A request record's sink (surfaces/boundary.py closes each record once its request is over)."""
        if rec.rate_limited is not None:
            self.rate_limited.labels(rec.api, rec.rate_limited).inc()
        target = rec.target
        if target is None and rec.attempts:
            target = rec.attempts[-1].target  # nothing answered: the provider tried last
        self.request(
            surface=rec.api,
            path=rec.path,
            model=rec.model,
            target=target,
            status=rec.status,
            error=rec.error,
            seconds=(rec.latency_ms or 0.0) / 1000,
            first_token_seconds=rec.first_token_seconds,
            usage=rec.usage,
        )

    def render(self) -> bytes:
        """Every series in Prometheus' text format."""
        return generate_latest(self.registry)
