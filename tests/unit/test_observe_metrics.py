"""GET /metrics in process over fake backends: each request counted once by surface, endpoint, model,
provider and outcome (success, failover, upstream error, 429, a client hang-up), tokens as the answers
reported them, gateway state (failovers, breakers, cut-off marks) and local models' engines read at
scrape time, bounded labels, and the operator-key rule. The same with the real model: tests/e2e."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lumbung.engines.base import ModelStats
from lumbung.errors import ProviderCutOff, RateLimited, UpstreamError
from tests.support.fake_backend import Fail, FakeBackend, Hang
from tests.support.fake_upstream import FakeUpstream
from tests.support.inprocess import MODEL, InProcess, in_process, route
from tests.support.surfaces import OPENAI_CHAT, SURFACES, Surface

surfaces = pytest.mark.parametrize("surface", SURFACES, ids=[s.name for s in SURFACES])
Labels = dict[str, str]


@dataclass
class Scrape:
    """One /metrics answer, parsed by prometheus_client's own parser."""

    samples: list[tuple[str, Labels, float]] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels`` (0 when there is none)."""
        return sum(v for n, ls, v in self.samples if n == name and labels.items() <= ls.items())

    def labels(self, name: str, label: str) -> set[str]:
        return {ls[label] for n, ls, _ in self.samples if n == name and label in ls}

    def has(self, name: str, **labels: str) -> bool:
        return any(n == name and labels.items() <= ls.items() for n, ls, _ in self.samples)


async def scrape(lb: InProcess, **headers: str) -> Scrape:
    response = await lb.client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    out = Scrape()
    for family in text_string_to_metric_families(response.text):
        out.types[family.name] = family.type
        out.samples.extend((s.name, dict(s.labels), s.value) for s in family.samples)
    return out


async def until_counted(lb: InProcess, name: str, want: float, **labels: str) -> Scrape:
    """Scrapes until ``name`` reaches ``want``: a request is counted once everything of it has ended,
    which may be a loop turn after its client read the last byte (a state to reach, not a duration)."""
    for _ in range(1000):
        got = await scrape(lb)
        if got.value(name, **labels) >= want:
            return got
        await asyncio.sleep(0)
    raise AssertionError(f"{name}{labels} never reached {want}: {got.value(name, **labels)}")


def api(surface: Surface) -> str:
    return surface.name.split(".")[0]


def two_providers() -> dict[str, FakeBackend]:
    return {"a": FakeBackend("a"), "b": FakeBackend("b")}


# -- who may read it -------------------------------------------------------------------------------


async def test_metrics_are_open_when_no_keys_are_configured(tmp_path: Path) -> None:
    async with in_process(tmp_path) as lb:
        got = await scrape(lb)
    assert got.types["lumbung_requests"] == "counter"
    assert got.types["lumbung_request_duration_seconds"] == "histogram"


async def test_metrics_need_an_operator_key_when_keys_are_configured(tmp_path: Path) -> None:
    async with in_process(tmp_path, api_keys=["k-user"], admin_api_keys=["k-admin"]) as lb:
        nobody = await lb.client.get("/metrics")
        user = await lb.client.get("/metrics", headers={"authorization": "Bearer k-user"})
        wrong = await lb.client.get("/metrics", headers={"authorization": "Bearer k-nope"})
        operator = await scrape(lb, authorization="Bearer k-admin")
    assert nobody.status_code == 401 and wrong.status_code == 401
    assert user.status_code == 403 and user.json()["error"]["code"] == "admin_key_required"
    assert operator.types["lumbung_requests"] == "counter"


# -- requests --------------------------------------------------------------------------------------


@surfaces
@pytest.mark.parametrize("stream", [False, True])
async def test_an_answered_request_is_counted_with_its_tokens(
    tmp_path: Path, surface: Surface, stream: bool
) -> None:
    async with in_process(tmp_path) as lb:
        response = await lb.client.post(
            surface.path, json=surface.body(MODEL, stream=stream), headers=surface.headers
        )
        assert response.status_code == 200, response.text
        where = {"surface": api(surface), "model": MODEL, "provider": "local"}
        got = await until_counted(lb, "lumbung_requests_total", 1, **where, outcome="ok")
    assert got.value("lumbung_requests_total", endpoint=surface.path, **where, outcome="ok") == 1
    assert got.value("lumbung_requests_total", model=MODEL) == 1  # (the scrapes are counted too)
    assert got.value("lumbung_prompt_tokens_total", **where) == 2  # the fake reports 2 prompt tokens
    assert got.value("lumbung_completion_tokens_total", **where) == 3  # and one per word
    duration = {"surface": api(surface), "endpoint": surface.path, "model": MODEL}
    assert got.value("lumbung_request_duration_seconds_count", **duration) == 1
    assert got.value("lumbung_request_duration_seconds_sum", **duration) > 0
    assert got.value("lumbung_time_to_first_token_seconds_count", **where) == 1


async def test_a_failover_counts_the_request_once_under_the_provider_that_answered(tmp_path: Path) -> None:
    async with in_process(tmp_path, providers=two_providers(), routes=[route("r", ["a"], ["b"])]) as lb:
        lb.fake("a").then(Fail(UpstreamError("a broke")), Fail(UpstreamError("a broke again")))
        for stream in (False, True):
            response = await lb.client.post(OPENAI_CHAT.path, json=OPENAI_CHAT.body("r", stream=stream))
            assert response.status_code == 200, response.text
        got = await until_counted(lb, "lumbung_requests_total", 2, model="r")
    assert got.value("lumbung_requests_total", model="r", provider="b", outcome="ok") == 2
    assert got.value("lumbung_requests_total", model="r", provider="a") == 0
    assert got.value("lumbung_failovers_total", from_provider="a", to_provider="b") == 2
    assert got.value("lumbung_target_failures_total", provider="a", target="a/m") == 2
    assert got.value("lumbung_target_attempts_total", target="a/m") == 2
    assert got.value("lumbung_target_attempts_total", target="b/m") == 2
    assert got.value("lumbung_completion_tokens_total", model="r", provider="b") == 6
    assert got.value("lumbung_time_to_first_token_seconds_count", model="r", provider="b") == 2
    assert got.value("lumbung_breaker_state", target="a/m", state="closed") == 1
    assert got.value("lumbung_target_inflight_requests") == 0


async def test_an_upstream_error_is_an_error_outcome_and_trips_the_breaker(tmp_path: Path) -> None:
    async with in_process(tmp_path, providers=two_providers(), routes=[route("r", ["a"], ["b"])]) as lb:
        for name in ("a", "b"):
            lb.fake(name).default = Fail(UpstreamError(f"{name} is down"))
        statuses = []
        for _ in range(3):  # enough failures to open both breakers (then: no target available)
            response = await lb.client.post(OPENAI_CHAT.path, json=OPENAI_CHAT.body("r", stream=False))
            statuses.append(response.status_code)
        got = await until_counted(lb, "lumbung_requests_total", 3, model="r")
    assert statuses[0] == 502 and set(statuses) <= {502, 503}
    assert got.value("lumbung_requests_total", model="r", outcome="error") == statuses.count(502)
    assert got.value("lumbung_requests_total", model="r", outcome="refused") == statuses.count(503)
    assert got.value("lumbung_refused_requests_total", model="r", status="503") == statuses.count(503)
    assert got.value("lumbung_requests_total", model="r", outcome="ok") == 0
    assert got.value("lumbung_breaker_state", target="a/m", state="open") == 1
    assert got.value("lumbung_breaker_state", target="a/m", state="closed") == 0
    assert got.value("lumbung_prompt_tokens_total", model="r") == 0


async def test_a_cut_off_provider_is_marked(tmp_path: Path) -> None:
    async with in_process(tmp_path, providers=two_providers(), routes=[route("r", ["a"], ["b"])]) as lb:
        lb.fake("a").then(Fail(ProviderCutOff("not available in your region")))
        response = await lb.client.post(OPENAI_CHAT.path, json=OPENAI_CHAT.body("r", stream=False))
        assert response.status_code == 200
        got = await until_counted(lb, "lumbung_requests_total", 1, model="r")
    assert got.value("lumbung_provider_cut_off", provider="a") == 1
    assert got.value("lumbung_provider_cut_off", provider="b") == 0
    assert got.value("lumbung_provider_cut_offs_total", provider="a") == 1
    assert got.value("lumbung_failovers_total", from_provider="a", to_provider="b") == 1


@surfaces
async def test_a_429_is_a_refusal(tmp_path: Path, surface: Surface) -> None:
    async with in_process(tmp_path) as lb:
        lb.local.then(Fail(RateLimited("at capacity", retry_after=3)))
        response = await lb.client.post(
            surface.path, json=surface.body(MODEL, stream=True), headers=surface.headers
        )
        assert response.status_code == 429
        got = await until_counted(lb, "lumbung_refused_requests_total", 1)
    assert got.value("lumbung_refused_requests_total", surface=api(surface), model=MODEL, status="429") == 1
    assert got.value("lumbung_requests_total", model=MODEL, outcome="refused") == 1
    assert got.value("lumbung_requests_total", model=MODEL, outcome="ok") == 0


@surfaces
async def test_a_client_hang_up_mid_stream_is_cancelled(tmp_path: Path, surface: Surface) -> None:
    async with in_process(tmp_path) as lb:
        lb.local.then(Hang(after=1))
        async with lb.client.stream(
            "POST", surface.path, json=surface.body(MODEL, stream=True), headers=surface.headers
        ) as response:
            assert response.status_code == 200
            for _ in range(10_000):
                if lb.local.hanging == 1:
                    break
                await asyncio.sleep(0)
        got = await until_counted(lb, "lumbung_requests_total", 1, model=MODEL, outcome="cancelled")
    assert got.value("lumbung_requests_total", model=MODEL) == 1
    assert got.value("lumbung_request_duration_seconds_count", model=MODEL) == 1


async def test_a_client_hang_up_before_the_first_byte_is_cancelled(tmp_path: Path) -> None:
    async with in_process(tmp_path) as lb:
        lb.local.then(Hang())
        task = asyncio.ensure_future(
            lb.client.post(OPENAI_CHAT.path, json=OPENAI_CHAT.body(MODEL, stream=False))
        )
        for _ in range(10_000):
            if lb.local.hanging == 1:
                break
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        got = await until_counted(lb, "lumbung_requests_total", 1, model=MODEL, outcome="cancelled")
    assert got.value("lumbung_requests_total", model=MODEL) == 1
    assert got.value("lumbung_completion_tokens_total", model=MODEL) == 0


async def test_unknown_model_names_make_no_series_of_their_own(tmp_path: Path) -> None:
    async with in_process(tmp_path) as lb:
        for i in range(5):
            response = await lb.client.post(
                OPENAI_CHAT.path, json=OPENAI_CHAT.body(f"made-up-{i}", stream=False)
            )
            assert response.status_code == 404
        got = await until_counted(lb, "lumbung_requests_total", 5, model="unknown")
        await lb.client.get("/no/such/path/req-123")
        got = await until_counted(lb, "lumbung_requests_total", 1, endpoint="unknown")
    chat = {"endpoint": OPENAI_CHAT.path, "model": "unknown", "provider": "none"}
    assert got.value("lumbung_requests_total", **chat, outcome="client_error") == 5
    assert got.labels("lumbung_requests_total", "model") == {"unknown"}
    assert not any("made-up" in v or "req-123" in v for _, ls, _ in got.samples for v in ls.values())


async def test_an_alias_is_counted_under_its_route(tmp_path: Path) -> None:
    routes = [route("r", ["a"], aliases=["gpt-4o"])]
    async with in_process(tmp_path, providers=two_providers(), routes=routes) as lb:
        response = await lb.client.post(OPENAI_CHAT.path, json=OPENAI_CHAT.body("gpt-4o", stream=False))
        assert response.status_code == 200
        got = await until_counted(lb, "lumbung_requests_total", 1, model="r")
    assert "gpt-4o" not in got.labels("lumbung_requests_total", "model")


async def test_the_pass_through_path_is_counted_like_the_typed_one(tmp_path: Path) -> None:
    a, b = FakeUpstream("a", words=4), FakeUpstream("b", words=4)
    servers = [await a.serve(), await b.serve()]
    a.set("500")
    try:
        providers = {"a": a.base_url, "b": b.base_url}
        async with in_process(tmp_path, providers=providers, routes=[route("r", ["a"], ["b"])]) as lb:
            for stream in (False, True):
                response = await lb.client.post(OPENAI_CHAT.path, json=OPENAI_CHAT.body("r", stream=stream))
                assert response.status_code == 200, response.text
            got = await until_counted(lb, "lumbung_requests_total", 2, model="r")
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()
    where = {"surface": "openai", "endpoint": OPENAI_CHAT.path, "model": "r", "provider": "b"}
    assert got.value("lumbung_requests_total", **where, outcome="ok") == 2
    assert got.value("lumbung_failovers_total", from_provider="a", to_provider="b") == 2
    assert got.value("lumbung_completion_tokens_total", model="r", provider="b") > 0
    assert got.value("lumbung_time_to_first_token_seconds_count", model="r", provider="b") == 2


# -- local models, read at scrape time -------------------------------------------------------------


@dataclass
class MeasuredBackend(FakeBackend):
    """A fake local backend that reports engine figures, as the llama.cpp backend does."""

    stats: list[ModelStats] = field(default_factory=list)

    def model_stats(self) -> list[ModelStats]:
        return self.stats


async def test_local_models_are_read_at_scrape_time(tmp_path: Path) -> None:
    running = ModelStats(
        MODEL,
        loaded=True,
        memory_bytes=5_000,
        parallel=4,
        running=2,
        queued=1,
        kv_cells=1024,
        kv_cells_used=300,
        kv_bytes_per_cell=16,
        kv_window_bytes=2_048,
        kv_bytes_per_sequence=4_096 + 512,
        prefix_cache_entries=3,
        prefix_cache_cells=100,
        prefix_cache_hits=7,
        prefix_cache_misses=2,
        prefix_cache_tokens=420,
        generated_tokens=999,
        refused=4,
        speculating=True,
        draft_tokens=800,
        accepted_draft_tokens=600,
    )
    local = MeasuredBackend(
        "local", [MODEL, "idle-model"], stats=[running, ModelStats("idle-model", loaded=False)]
    )
    async with in_process(tmp_path, local=local) as lb:
        got = await scrape(lb)
        local.stats = [ModelStats(MODEL, loaded=True, generated_tokens=1500)]
        later = await scrape(lb)
    figures = {
        "lumbung_model_loaded": 1,
        "lumbung_model_memory_bytes": 5_000,
        "lumbung_model_parallel_sequences": 4,
        "lumbung_model_running_sequences": 2,
        "lumbung_model_queued_sequences": 1,
        "lumbung_model_kv_cells": 1024,
        "lumbung_model_kv_cells_used": 300,
        "lumbung_model_kv_used_bytes": 300 * 16,
        "lumbung_model_kv_capacity_bytes": 1024 * 16 + 2_048,  # with the sliding-window part
        "lumbung_model_kv_bytes_per_sequence": 4_096 + 512,
        "lumbung_model_prefix_cache_entries": 3,
        "lumbung_model_prefix_cache_cells": 100,
        "lumbung_model_prefix_cache_hits_total": 7,
        "lumbung_model_prefix_cache_misses_total": 2,
        "lumbung_model_prefix_cache_reused_tokens_total": 420,
        "lumbung_model_generated_tokens_total": 999,
        "lumbung_model_refused_requests_total": 4,
        "lumbung_model_speculative_draft_tokens_total": 800,
        "lumbung_model_speculative_accepted_tokens_total": 600,
        "lumbung_model_speculative_acceptance_ratio": 0.75,
    }
    for name, want in figures.items():
        assert got.value(name, model=MODEL) == want, name
    # An unloaded model says so, and nothing else: a 0 would read as a measurement.
    assert got.value("lumbung_model_loaded", model="idle-model") == 0
    assert not got.has("lumbung_model_running_sequences", model="idle-model")
    assert later.value("lumbung_model_generated_tokens_total", model=MODEL) == 1500
    assert not later.has("lumbung_model_speculative_acceptance_ratio", model=MODEL)  # no drafts: no ratio
    assert later.labels("lumbung_model_loaded", "model") == {MODEL}
