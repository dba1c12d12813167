"""The proof commands as a user types them: `lumbung shadow report ROUTE` (the shadow recording's
pairs, same id, roles shadow-live and shadow-candidate, as the replay report; thresholds setting the
exit code) and `lumbung replay`'s clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from lumbung.cli import main
from lumbung.proof.exchange import Exchange, recording_path, write_exchanges
from tests.support.recorded_traffic import completion, traffic


def shadow_recording(home: Path) -> None:
    exchanges = []
    for e in traffic():
        exchanges.append(
            Exchange(id=e.id, request=e.request, response=e.response, role="shadow-live", latency_ms=900.0)
        )
        answer = e.response
        if e.id == "tool-1":  # the candidate breaks the tool's schema here
            answer = completion(calls=[("get_weather", '{"city": "Paris", "unit": "kelvin"}')])
        exchanges.append(
            Exchange(
                id=e.id,
                request=e.request,
                response=answer,
                role="shadow-candidate",
                route="qwen-local",
                latency_ms=300.0,
            )
        )
    exchanges.append(
        Exchange(id="lone", request={}, response=None, role="shadow-live")
    )  # its copy was dropped
    write_exchanges(recording_path(home, "shadow-gpt-4o-mini"), exchanges)


def test_the_shadow_report_compares_live_and_candidate_answers(tmp_path: Path) -> None:
    shadow_recording(tmp_path)
    gate = tmp_path / "gate.yaml"
    gate.write_text("tool_call_validity: '>= 0.98'\n")
    out = tmp_path / "shadow.html"
    result = CliRunner().invoke(
        main,
        [
            "shadow",
            "report",
            "gpt-4o-mini",
            "--embedding-model",
            "none",
            "--report",
            str(out),
            "--thresholds",
            str(gate),
        ],
        env={"LUMBUNG_HOME": str(tmp_path)},
    )
    assert result.exit_code == 1, result.output  # the threshold failed
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["candidate"] == "qwen-local" and report["baseline"] == "shadow-live"
    assert report["metrics"]["requests"] == 6  # the unpaired one left out
    by_id = {r["id"]: r for r in report["requests"]}
    assert by_id["tool-1"]["failed"] == ["tool_call_validity", "tool_call_match"]
    assert (
        report["metrics"]["latency_p50_ms"] == 300.0 and report["metrics"]["baseline_latency_p50_ms"] == 900.0
    )
    assert "<svg" in out.read_text()


def test_a_route_without_shadow_pairs_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["shadow", "report", "nothing", "--embedding-model", "none"],
        env={"LUMBUNG_HOME": str(tmp_path)},
    )
    assert result.exit_code == 1 and "no recording 'shadow-nothing'" in result.output


def test_a_replay_with_no_server_to_reach_says_so(tmp_path: Path) -> None:
    write_exchanges(tmp_path / "day.jsonl", traffic())
    result = CliRunner().invoke(
        main,
        ["replay", str(tmp_path / "day.jsonl"), "--against", "m", "--url", "http://127.0.0.1:9"],
        env={"LUMBUNG_HOME": str(tmp_path)},
    )
    assert result.exit_code == 1 and "cannot reach the lumbung server at http://127.0.0.1:9" in result.output
    missing = CliRunner().invoke(
        main, ["replay", "nope", "--against", "m"], env={"LUMBUNG_HOME": str(tmp_path)}
    )
    assert missing.exit_code == 1 and "no recording 'nope'" in missing.output
