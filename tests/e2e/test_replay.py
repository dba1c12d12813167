"""`lumbung replay` as a user runs it: a recording replayed on the real local model (SmolLM2) through
a live server, the report written, the thresholds deciding the exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from lumbung.proof.exchange import Exchange, write_exchanges
from tests.support.recorded_traffic import PERSON_SCHEMA, completion
from tests.support.server import ServerProcess


def recording(path: Path) -> Path:
    schema = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON_SCHEMA}}
    rows: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("json", {"response_format": schema}, completion('{"name": "Ada", "age": 36}')),
        ("chat", {}, completion("Hello there! How can I help you today?")),
    ]
    prompts = {"json": "Ada Lovelace was 36. Give her name and age as JSON.", "chat": "Say hello."}
    write_exchanges(
        path,
        [
            Exchange(
                id=kind,
                request={
                    "model": "gpt-cloud",
                    "messages": [{"role": "user", "content": prompts[kind]}],
                    "max_tokens": 40,
                    "temperature": 0,
                    **extra,
                },
                response=response,
                group=kind,
                latency_ms=500.0,
            )
            for kind, extra, response in rows
        ],
    )
    return path


def replay(
    server: ServerProcess, tmp_path: Path, thresholds: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    gate = tmp_path / "thresholds.yaml"
    gate.write_text(thresholds)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "lumbung",
            "replay",
            str(recording(tmp_path / "day.jsonl")),
            "--against",
            "smollm2:135m",
            "--url",
            server.base_url,
            "--report",
            str(tmp_path / "report.json"),
            "--thresholds",
            str(gate),
            "--concurrency",
            "2",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=server.env,
    )


def test_a_replay_on_the_local_model_writes_the_report_and_passes_its_thresholds(
    server: ServerProcess, tmp_path: Path
) -> None:
    done = replay(server, tmp_path, "answered: '>= 1.0'\nschema_validity: '= 1.0'\n")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] is True and report["metrics"]["requests"] == 2
    by_id = {r["id"]: r for r in report["requests"]}
    # The grammar holds SmolLM2 to the schema: the answer is valid JSON against it.
    assert by_id["json"]["checks"]["schema_validity"] is True
    assert by_id["chat"]["candidate"]["text"] and by_id["chat"]["candidate"]["completion_tokens"] > 0
    assert report["metrics"]["latency_p50_ms"] > 0 and report["metrics"]["ttft_p50_ms"] > 0
    assert "schema_validity" in done.stdout
    # Similarity by the served embedding model (all-MiniLM-L6-v2), a cosine in [-1, 1].
    similarity = by_id["chat"]["similarity"]
    assert similarity is not None and -1.0 <= similarity <= 1.0
    assert report["metrics"]["median_similarity"] is not None


def test_a_threshold_the_candidate_misses_fails_the_replay(server: ServerProcess, tmp_path: Path) -> None:
    done = replay(
        server, tmp_path, "exact_match: '= 1.0'\nmean_rouge_l: '>= 0.99'\n", "--embedding-model", "none"
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL" in done.stdout
    assert json.loads((tmp_path / "report.json").read_text())["passed"] is False
