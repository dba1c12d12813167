"""Schemathesis against lumbung's own /openapi.json, in process over a fake backend: bodies generated
from the wire models' schemas (valid ones, and invalid ones in every way the schema allows), sent to
every operation. Any 5xx fails, and so does an answer whose status, media type or error envelope the
description does not allow. Bounded: ``LUMBUNG_FUZZ_EXAMPLES`` cases per operation and mode (default
10; raise it for a longer hunt)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.inprocess import MODEL, build
from tests.support.surfaces import SURFACES, Surface

pytestmark = pytest.mark.fuzz
EXAMPLES = int(os.environ.get("LUMBUNG_FUZZ_EXAMPLES", "10"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    app = build(tmp_path_factory.mktemp("fuzz")).app
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    asgi.shutdown_lifespans()  # the app's shutdown, on schemathesis' own event loop thread


def test_the_description_covers_every_api(schema: Any) -> None:
    paths = {op.ok().path for op in schema.get_all_operations()}
    assert {"/v1/chat/completions", "/v1/messages", "/api/chat", "/v1/responses", "/api/embed"} <= paths


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_no_input_gets_a_server_error_or_an_undescribed_answer(schema: Any, mode: GenerationMode) -> None:
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode), served=st.booleans())
        def run(case: Any, served: bool) -> None:
            # Half the cases name a model that exists, so they get past the lookup into the translator.
            if served and isinstance(case.body, dict) and isinstance(case.body.get("model"), str):
                case.body["model"] = MODEL
            case.call_and_validate(checks=CHECKS)

        try:
            run()
        except Unsatisfiable:  # nothing of it can be made invalid (no body, no parameter): no negative case
            assert mode is GenerationMode.NEGATIVE
        except Exception as exc:  # every operation is fuzzed; all failures are reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("surface", SURFACES, ids=[s.name for s in SURFACES])
def test_answers_conform_to_the_description(schema: Any, surface: Surface, stream: bool) -> None:
    """Each answer, whole or each event of a stream, is what the description says (the fuzz found
    every streamed answer 'violating' it once: OpenAPI 3.1 reads an event stream's schema per event)."""
    case = schema[surface.path]["POST"].Case(
        body=surface.body(MODEL, stream=stream), headers=dict(surface.headers) or None
    )
    case.call_and_validate(checks=CHECKS)


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/v1/embeddings", {"model": MODEL, "input": ["a", "b"]}, None),
        ("/api/embed", {"model": MODEL, "input": "a"}, None),
        ("/api/embeddings", {"model": MODEL, "prompt": "a"}, None),
        (
            "/v1/messages/count_tokens",
            {"model": MODEL, "messages": [{"role": "user", "content": "a"}]},
            {"anthropic-version": "2023-06-01"},
        ),
    ],
)
def test_other_answers_conform_to_the_description(
    schema: Any, path: str, body: dict[str, Any], headers: dict[str, str] | None
) -> None:
    schema[path]["POST"].Case(body=body, headers=headers).call_and_validate(checks=CHECKS)
