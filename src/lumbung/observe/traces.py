"""OpenTelemetry traces over OTLP/HTTP, only when ``otlp_endpoint`` is set: one span per request, made
from its record once the request is over (surfaces/boundary.py closes the record and hands it to the
sinks), with a child span per attempt on a target (its first token an event), in the client's trace
when it sent a W3C ``traceparent``. Nothing is traced on the request's path itself: the spans are
built after the fact with the request's own times, and the SDK's batch processor exports from its own
thread.

The OpenTelemetry packages are an extra (``pip install 'lumbung[otel]'``), imported only here and only
when an endpoint is configured.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lumbung.errors import ConfigError
from lumbung.observe.metrics import NONE, Endpoints, outcome
from lumbung.record import RequestRecord

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Status


class Traces:
    """Spans for one app's requests, exported to ``endpoint`` (an OTLP/HTTP collector's base URL, such
    as ``http://127.0.0.1:4318``; traces go to its ``/v1/traces``)."""

    def __init__(self, endpoint: str, endpoints: Endpoints, *, service: str = "lumbung") -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        except ImportError as exc:
            raise ConfigError(
                "otlp_endpoint is set but OpenTelemetry is not installed: pip install 'lumbung[otel]'"
            ) from exc
        self.endpoints = endpoints
        self.provider: TracerProvider = TracerProvider(resource=Resource.create({"service.name": service}))
        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("lumbung")
        self.failed: Callable[[str | None], Status] = lambda message: Status(StatusCode.ERROR, message)
        self.parent = TraceContextTextMapPropagator().extract
        self.within = set_span_in_context
        self.server, self.client = SpanKind.SERVER, SpanKind.CLIENT

    def record(self, rec: RequestRecord) -> None:
        """A request record's sink: its span and one child span per attempt, with the record's own
        times (perf_counter, turned into wall-clock nanoseconds here), in the client's trace when it
        sent a ``traceparent``."""
        offset = time.time_ns() - int(time.perf_counter() * 1e9)

        def wall(perf: float) -> int:
            return offset + int(perf * 1e9)

        endpoint = self.endpoints.name(rec.path)
        start = wall(rec.start)
        # The latency is rounded (to 0.1 ms): the span still holds its attempts whole.
        ends = [wall(n.ended) for n in rec.attempts if n.ended is not None]
        end = max([start + int((rec.latency_ms or 0.0) * 1e6), *ends])
        end_as = outcome(rec.status, rec.error)
        attributes: dict[str, Any] = {
            "http.request.method": rec.method,
            "http.route": endpoint,
            "http.response.status_code": rec.status,
            "lumbung.request_id": rec.id,
            "lumbung.surface": rec.api,
            "lumbung.outcome": end_as,
            "lumbung.stream": rec.stream,
            "lumbung.attempts": len(rec.attempts),
        }
        if rec.model:
            attributes["gen_ai.request.model"] = rec.model
        target = rec.target
        attributes["lumbung.provider"] = target.partition("/")[0] if target else NONE
        if target:
            attributes["lumbung.target"] = target
        usage = rec.usage
        if usage is not None:
            attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
            attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
            attributes["lumbung.usage.cached_tokens"] = usage.cached_tokens
        if rec.error:
            attributes["error.type"] = rec.error
        parent = self.parent({"traceparent": rec.traceparent}) if rec.traceparent else None
        span = self.tracer.start_span(
            f"{rec.method} {endpoint}",
            context=parent,
            kind=self.server,
            start_time=start,
            attributes=attributes,
        )
        if end_as == "error":
            span.set_status(self.failed(rec.error))
        inside = self.within(span)
        for note in rec.attempts:
            provider = note.target.partition("/")[0]
            child = self.tracer.start_span(
                f"attempt {note.target}",
                context=inside,
                kind=self.client,
                start_time=wall(note.started) if note.started is not None else start,
                attributes={
                    "lumbung.target": note.target,
                    "lumbung.provider": provider,
                    "lumbung.outcome": note.error or "ok",
                },
            )
            if note.first_token is not None:
                child.add_event("first_token", timestamp=wall(note.first_token))
            if note.error is not None and note.error != "cancelled":
                child.set_status(self.failed(note.error))
            child.end(end_time=wall(note.ended) if note.ended is not None else end)
        span.end(end_time=end)

    def close(self) -> None:
        """Export what is pending and stop (at shutdown)."""
        self.provider.shutdown()
