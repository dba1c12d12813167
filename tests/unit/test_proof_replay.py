"""Replay through lumbung's whole HTTP layer in process: a candidate route whose provider answers the
recorded answers scores 1.0 on every check; one that breaks a tool argument or the JSON is counted
request by request; thresholds decide the exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lumbung.cli_proof import finish, replay_report
from lumbung.config.prices import Price, Prices
from lumbung.config.routes import RouteConfig
from lumbung.proof.exchange import Exchange, read_exchanges, recording_path, write_exchanges
from lumbung.proof.pricing import pricer
from lumbung.proof.replay import recorded as recorded_answer
from lumbung.proof.replay import select, shadow_pairs
from lumbung.proof.report import Report, metric_names
from lumbung.proof.tap import ProofTap
from lumbung.proof.thresholds import parse
from tests.support.inprocess import MODEL, in_process, route
from tests.support.recorded_traffic import RecordedCloud, completion, traffic


async def run(tmp_path: Path, cloud: RecordedCloud, **options: object) -> Report:
    path = tmp_path / "day.jsonl"
    write_exchanges(path, traffic())
    async with in_process(tmp_path, providers={"cloud": cloud}, routes=[route("candidate", ["cloud"])]) as lb:
        return await replay_report(
            lb.client,
            path,
            list(read_exchanges(path)),
            "candidate",
            "recorded",
            None,
            MODEL,
            **options,  # type: ignore[arg-type]
        )


async def test_an_identical_replay_scores_one_on_every_check(tmp_path: Path) -> None:
    cloud = RecordedCloud(traffic())
    report = await run(tmp_path, cloud)
    assert len(cloud.requests) == 6
    applied = {name: rate for name, rate in report.checks.items() if rate["applicable"]}
    assert set(applied) >= {
        "answered", "json_validity", "schema_validity", "tool_call_validity", "tool_call_match",
        "exact_match", "similar", "finish_reason_match", "non_empty", "no_refusal",
    }  # fmt: skip
    assert all(rate["rate"] == 1.0 for rate in applied.values()), applied
    m = report.metrics
    assert m["median_similarity"] == 1.0 and m["mean_rouge_l"] == 1.0
    assert m["errors"] == 0 and m["empty_answers"] == 0 and m["refusals"] == 0
    assert m["prompt_tokens"] == 6 * 12 and m["completion_tokens"] == 6 * 7
    assert m["latency_p50_ms"] is not None and m["ttft_p95_ms"] is not None
    assert m["baseline_latency_p50_ms"] == pytest.approx(102.5)
    assert report.passed and report.worst() == []
    assert all(rates["answered"]["rate"] == 1.0 for rates in report.groups.values())
    assert set(report.groups) == {"tools", "extract", "chat"}


async def test_a_wrong_tool_argument_and_invalid_json_are_counted_request_by_request(tmp_path: Path) -> None:
    wrong = {
        "Weather in Paris?": completion(calls=[("get_weather", '{"city": "Paris", "unit": "kelvin"}')]),
        "Weather in Oslo?": completion(calls=[("get_weather", '{"unit": "fahrenheit", "city": "Bergen"}')]),
        "Ada, 36": completion('{"name": "Ada", "age": '),
        "Capital of France?": completion("Paris is the capital of France."),
    }
    report = await run(tmp_path, RecordedCloud(traffic(), wrong))
    by_id = {c.id: c for c in report.comparisons}
    assert by_id["tool-1"].checks.failed == ["tool_call_validity", "tool_call_match"]
    assert by_id["tool-2"].checks.failed == ["tool_call_match"]  # valid, but not the same call
    assert by_id["json-1"].checks.failed == ["json_validity", "schema_validity", "exact_match"]
    assert by_id["json-2"].checks.failed == []
    assert by_id["chat-1"].checks.failed == []
    chat2 = by_id["chat-2"]
    assert chat2.checks.exact_match is False and chat2.similarity is not None and chat2.similarity < 1.0
    assert 0 < (chat2.rouge_l or 0) < 1
    rates = report.checks
    assert (rates["tool_call_validity"]["passed"], rates["tool_call_validity"]["applicable"]) == (1, 2)
    assert rates["tool_call_match"]["rate"] == 0.0
    assert (rates["schema_validity"]["passed"], rates["schema_validity"]["applicable"]) == (0, 1)
    assert rates["json_validity"]["rate"] == 0.5
    worst = [c.id for c in report.worst()]
    assert worst[:2] == ["json-1", "tool-1"] and set(worst[2:]) == {"tool-2", "chat-2"}
    data = json.loads(json.dumps(report.to_dict()))  # JSON with every number
    assert data["metrics"]["tool_call_validity"] == 0.5
    assert {r["id"]: r["failed"] for r in data["requests"]}["json-1"][:2] == [
        "json_validity",
        "schema_validity",
    ]


async def test_thresholds_set_the_exit_code(tmp_path: Path) -> None:
    wrong = {"Weather in Paris?": completion(calls=[("get_weather", '{"city": "Paris", "unit": "kelvin"}')])}
    gate = parse({"tool_call_validity": ">= 0.98", "schema_validity": "= 1.0"}, metric_names())
    failing = await run(tmp_path, RecordedCloud(traffic(), wrong), thresholds=gate)
    assert [v.passed for v in failing.verdicts] == [False, True] and not failing.passed
    with pytest.raises(SystemExit) as exit_:
        finish(failing, tmp_path / "failing.json")
    assert exit_.value.code == 1
    assert json.loads((tmp_path / "failing.json").read_text())["passed"] is False
    passing = await run(tmp_path, RecordedCloud(traffic()), thresholds=gate)
    assert passing.passed
    finish(passing, tmp_path / "passing.json")  # no exit


async def test_a_candidate_that_fails_is_counted_as_failed(tmp_path: Path) -> None:
    path = tmp_path / "day.jsonl"
    write_exchanges(path, traffic())
    async with in_process(tmp_path) as lb:
        report = await replay_report(lb.client, path, traffic(), "no-such-model", "recorded", None, "none")
    assert report.metrics["errors"] == 6 and report.metrics["answered"] == 0.0
    assert all("404" in (c.candidate.error or "") for c in report.comparisons)
    assert report.metrics["tool_call_validity"] == 0.0


def test_limit_and_seed_pick_the_same_sample() -> None:
    exchanges = [Exchange(id=str(i), request={}, response=None) for i in range(50)]
    assert [e.id for e in select(exchanges, 3, None)] == ["0", "1", "2"]
    first, again = select(exchanges, 5, 7), select(exchanges, 5, 7)
    assert [e.id for e in first] == [e.id for e in again] and len(first) == 5
    assert select(exchanges, None, 7) == exchanges


def test_shadow_pairs_join_live_and_candidate_answers_by_id() -> None:
    live = [Exchange(id=e.id, request=e.request, response=e.response, role="shadow-live") for e in traffic()]
    cand = Exchange(id="chat-1", request={}, response=completion("Hi!"), role="shadow-candidate")
    pairs = shadow_pairs([*live, cand])
    assert [(ex.id, base.text, c.text) for ex, base, c in pairs] == [
        ("chat-1", "Hello there! How can I help you today?", "Hi!")
    ]


async def test_costs_come_from_the_price_table(tmp_path: Path) -> None:
    prices = Prices(
        targets={"cloud/m": Price(input=2.0, output=8.0), "openai/gpt-4o": Price(input=5.0, output=15.0)},
        routes={"gpt-cloud": Price(input=10.0, output=30.0)},
    )
    routes = [RouteConfig.model_validate(route("candidate", ["cloud"]))]
    recorded = traffic()
    recorded[0].provider = "openai/gpt-4o"  # the rest cost the reference price of the route they left
    for e in recorded:
        e.route = "gpt-cloud"
    cloud = RecordedCloud(recorded)
    async with in_process(tmp_path, providers={"cloud": cloud}, routes=[route("candidate", ["cloud"])]) as lb:
        report = await replay_report(
            lb.client, tmp_path / "x.jsonl", recorded, "candidate", "recorded", None, "none",
            price=pricer(prices, routes, "candidate", "recorded"),
        )  # fmt: skip
    # every answer: 12 prompt and 7 completion tokens
    assert report.metrics["cost"] == pytest.approx(6 * (12 * 2.0 + 7 * 8.0) / 1e6)
    assert report.metrics["baseline_cost"] == pytest.approx(
        (12 * 5.0 + 7 * 15.0 + 5 * (12 * 10.0 + 7 * 30.0)) / 1e6
    )
    unpriced = pricer(Prices(), [], "candidate", "recorded")
    base, cand = recorded_answer(recorded[0]), recorded_answer(recorded[0])
    unpriced(recorded[0], base, cand)
    assert base.cost is None and cand.cost is None


async def test_traffic_recorded_through_the_gateway_replays_identically(tmp_path: Path) -> None:
    """The whole path: a route to a fake cloud records its traffic (tool calls, JSON schema answers,
    plain chat; streamed and whole), and that recording replayed on a candidate answering the same
    scores 1.0 on every check; on a candidate that breaks one tool argument, that request fails."""
    cloud, same = RecordedCloud(traffic()), RecordedCloud(traffic())
    wrong = RecordedCloud(
        traffic(), {"Weather in Oslo?": completion(calls=[("get_weather", '{"city": "Oslo"}')])}
    )
    routes = [
        route("gpt", ["cloud"], record=True),
        route("candidate", ["same"]),
        route("wrong", ["wrong"]),
    ]
    async with in_process(
        tmp_path, providers={"cloud": cloud, "same": same, "wrong": wrong}, routes=routes
    ) as lb:
        for n, exchange in enumerate(traffic()):
            body = {**exchange.request, "model": "gpt", "stream": n % 2 == 1}
            response = await lb.client.post("/v1/chat/completions", json=body)
            assert response.status_code == 200, response.text
        tap = lb.gateway.tap
        assert isinstance(tap, ProofTap)
        tap.recorder.flush()
        path = recording_path(lb.settings.home, "gpt")
        recording = list(read_exchanges(path))
        assert len(recording) == 6 and {e.stream for e in recording} == {True, False}
        identical = await replay_report(lb.client, path, recording, "candidate", "recorded", None, MODEL)
        broken = await replay_report(lb.client, path, recording, "wrong", "recorded", None, MODEL)
    applied = {name: rate["rate"] for name, rate in identical.checks.items() if rate["applicable"]}
    assert {"schema_validity", "tool_call_validity", "tool_call_match", "exact_match"} <= set(applied)
    assert all(rate == 1.0 for rate in applied.values()), applied
    assert identical.metrics["median_similarity"] == 1.0
    failed = {c.prompt: c.checks.failed for c in broken.comparisons if c.checks.failed}
    assert failed == {"Weather in Oslo?": ["tool_call_validity", "tool_call_match"]}
