"""OpenTelemetry traces, only when ``otlp_endpoint`` is set: one span per request exported over OTLP/HTTP
to a collector (a stand-in on 127.0.0.1 that decodes what the SDK sends with the protocol's own
protobuf types), carrying the route, status, outcome, provider, tokens, and an event per attempt."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from lumbung.errors import UpstreamError
from lumbung.observe.traces import Traces
from tests.support.fake_backend import Fail, FakeBackend
from tests.support.inprocess import in_process, route
from tests.support.surfaces import OPENAI_CHAT


class Collector:
    """An OTLP/HTTP trace receiver: keeps every span it is sent, as {name, attributes, events, status}."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.paths: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                collector.paths.append(self.path)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        collector.spans.extend(_span(s) for s in scope.spans)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(value: AnyValue) -> Any:
    return getattr(value, value.WhichOneof("value") or "string_value")


def _span(span: Any) -> dict[str, Any]:
    return {
        "name": span.name,
        "attributes": {a.key: _value(a.value) for a in span.attributes},
        "events": [(e.name, {a.key: _value(a.value) for a in e.attributes}) for e in span.events],
        "error": span.status.code == 2,  # STATUS_CODE_ERROR
        "start": span.start_time_unix_nano,
        "end": span.end_time_unix_nano,
        "trace": span.trace_id.hex(),
        "id": span.span_id.hex(),
        "parent": span.parent_span_id.hex(),
    }


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


TRACE, CALLER = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


async def test_each_request_is_a_span_with_one_child_per_attempt(
    tmp_path: Path, collector: Collector
) -> None:
    providers = {"a": FakeBackend("a"), "b": FakeBackend("b")}
    async with in_process(
        tmp_path, providers=providers, routes=[route("r", ["a"], ["b"])], otlp_endpoint=collector.url
    ) as lb:
        lb.fake("a").then(Fail(UpstreamError("a broke")))
        answered = await lb.client.post(
            OPENAI_CHAT.path,
            json=OPENAI_CHAT.body("r", stream=True),
            headers={"traceparent": f"00-{TRACE}-{CALLER}-01"},
        )
        unknown = await lb.client.post(OPENAI_CHAT.path, json=OPENAI_CHAT.body("made-up", stream=False))
    # Leaving the block shut the app down, which exports what is pending.
    assert answered.status_code == 200 and unknown.status_code == 404
    assert set(collector.paths) == {"/v1/traces"}
    requests = {
        s["attributes"]["lumbung.request_id"]: s
        for s in collector.spans
        if "lumbung.request_id" in s["attributes"]
    }
    span = requests[answered.headers["x-request-id"]]
    assert span["name"] == "POST /v1/chat/completions"
    assert span["trace"] == TRACE and span["parent"] == CALLER  # in the client's trace
    attrs = span["attributes"]
    assert attrs["http.route"] == "/v1/chat/completions" and attrs["http.response.status_code"] == 200
    assert attrs["lumbung.provider"] == "b" and attrs["lumbung.outcome"] == "ok"
    assert attrs["gen_ai.request.model"] == "r" and attrs["lumbung.attempts"] == 2
    assert attrs["gen_ai.usage.output_tokens"] == 3 and attrs["gen_ai.usage.input_tokens"] == 2
    assert 0 < span["start"] <= span["end"] and not span["error"]
    attempts = sorted((s for s in collector.spans if s["parent"] == span["id"]), key=lambda s: s["start"])
    assert [a["attributes"]["lumbung.target"] for a in attempts] == ["a/m", "b/m"]
    failed, served = attempts
    assert failed["error"] and failed["attributes"]["lumbung.outcome"] != "ok"
    assert not served["error"] and served["attributes"]["lumbung.outcome"] == "ok"
    assert [name for name, _ in served["events"]] == ["first_token"] and failed["events"] == []
    assert (
        span["start"] <= failed["start"] <= failed["end"] <= served["start"] <= served["end"] <= span["end"]
    )
    refused = requests[unknown.headers["x-request-id"]]
    assert refused["trace"] != TRACE and refused["parent"] == ""  # a trace of its own
    assert refused["attributes"]["lumbung.outcome"] == "client_error"
    assert refused["attributes"]["lumbung.provider"] == "none"


async def test_without_an_endpoint_nothing_is_traced(tmp_path: Path) -> None:
    async with in_process(tmp_path) as lb:
        assert lb.settings.otlp_endpoint is None
        sinks = lb.app.state.lumbung.sinks
        response = await lb.client.post(OPENAI_CHAT.path, json=OPENAI_CHAT.body("fake-model", stream=False))
        assert response.status_code == 200
    assert not any(isinstance(getattr(sink, "__self__", None), Traces) for sink in sinks)
