"""``lumbung recordings``: import of OpenAI-format JSONL and Batch API files (bad lines named, nothing
half-written, redaction applied), and list | show | export | rm over what is there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from lumbung.cli import main
from lumbung.proof.exchange import read_exchanges, recording_path


def run(home: Path, *args: str, config: Path | None = None) -> Result:
    env = {"LUMBUNG_HOME": str(home), "LUMBUNG_CONFIG": str(config) if config else ""}
    return CliRunner().invoke(main, ["recordings", *args], env=env, catch_exceptions=False)


def chat_request(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def completion(text: str | None, calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }


CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "weather", "arguments": '{"city":"Jakarta"}'},
}


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


@pytest.fixture
def pairs(tmp_path: Path) -> Path:
    rows = [
        {"id": "a", "request": chat_request("hello"), "response": completion("Hi there")},
        {
            "request": chat_request(
                "weather?", tools=[{"type": "function", "function": {"name": "weather"}}]
            ),
            "response": completion(None, [CALL]),
            "group": "tools",
        },
        {"id": "c", "request": chat_request("this one failed"), "response": None},
    ]
    return write_jsonl(tmp_path / "traffic.jsonl", rows)


def test_openai_jsonl_imports_and_exports_back_the_same_pairs(tmp_path: Path, pairs: Path) -> None:
    home = tmp_path / "home"
    result = run(home, "import", str(pairs), "--name", "prod")
    assert result.exit_code == 0, result.output
    assert "imported 3 exchanges (1 without an answer) into prod" in result.output
    exchanges = list(read_exchanges(recording_path(home, "prod")))
    assert [e.role for e in exchanges] == ["imported"] * 3
    assert exchanges[0].id == "a" and exchanges[1].group == "tools" and exchanges[2].response is None
    assert exchanges[1].response["choices"][0]["message"]["tool_calls"] == [CALL]  # type: ignore[index]
    assert exchanges[0].route == "gpt-4o-mini"

    listed = json.loads(run(home, "list", "--json").output)
    assert [(r["name"], r["exchanges"], r["failed"], r["roles"]) for r in listed] == [
        ("prod", 3, 1, {"imported": 3})
    ]
    shown = run(home, "show", "prod").output
    assert "'hello' -> 'Hi there'" in shown and "tool calls: weather" in shown and "(failed: failed)" in shown
    one = json.loads(run(home, "show", "prod", "--id", "a").output)
    assert one["request"]["messages"][0]["content"] == "hello"

    out = tmp_path / "out.jsonl"
    assert run(home, "export", "prod", "--format", "openai", "-o", str(out)).exit_code == 0
    original = [json.loads(line) for line in pairs.read_text().splitlines()]
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(e["request"], e["response"]) for e in exported] == [
        (o["request"], o["response"]) for o in original
    ]
    again = run(home, "import", str(out), "--name", "copy")
    assert again.exit_code == 0, again.output
    assert [e.request for e in read_exchanges(recording_path(home, "copy"))] == [e.request for e in exchanges]


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"request": {"model": "m"}, "response": None}), "has no 'messages'"),
        (
            json.dumps({"request": chat_request("x"), "response": {"id": "y"}}),
            "chat.completion object with 'choices'",
        ),
        (json.dumps({"prompt": "x", "completion": "y"}), "each line needs 'request'"),
        (json.dumps([1, 2]), "a JSON object is expected"),
    ],
)
def test_a_bad_line_is_named_and_nothing_is_written(tmp_path: Path, bad: str, says: str) -> None:
    good = json.dumps({"request": chat_request("ok"), "response": completion("fine")})
    path = write_jsonl(tmp_path / "t.jsonl", [good, good, bad, good])
    result = CliRunner().invoke(
        main, ["recordings", "import", str(path), "--name", "x"], env={"LUMBUNG_HOME": str(tmp_path / "h")}
    )
    assert result.exit_code == 1
    assert f"{path}:3:" in result.output and says in result.output
    assert not (tmp_path / "h" / "recordings").exists() or not list((tmp_path / "h" / "recordings").iterdir())


def batch_files(
    tmp_path: Path, outputs: list[dict[str, Any]], url: str = "/v1/chat/completions"
) -> tuple[Path, Path]:
    inputs = [
        {"custom_id": f"task-{i}", "method": "POST", "url": url, "body": chat_request(f"question {i}")}
        for i in range(3)
    ]
    return write_jsonl(tmp_path / "in.jsonl", inputs), write_jsonl(tmp_path / "out.jsonl", outputs)


def answer(custom_id: str, text: str) -> dict[str, Any]:
    body = completion(text)
    return {
        "id": "batch_req_1",
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": "r", "body": body},
        "error": None,
    }


def test_batch_input_and_output_files_pair_by_custom_id(tmp_path: Path) -> None:
    failed = {
        "id": "b",
        "custom_id": "task-1",
        "response": {"status_code": 400, "body": {"error": {}}},
        "error": None,
    }
    inp, out = batch_files(tmp_path, [answer("task-2", "two"), failed, answer("task-0", "zero")])
    result = run(tmp_path / "h", "import", str(inp), "--batch-output", str(out), "--name", "batch")
    assert result.exit_code == 0, result.output
    exchanges = list(read_exchanges(recording_path(tmp_path / "h", "batch")))
    assert [e.id for e in exchanges] == ["task-0", "task-1", "task-2"]
    assert exchanges[0].request["messages"][0]["content"] == "question 0"
    assert exchanges[0].response["choices"][0]["message"]["content"] == "zero"  # type: ignore[index]
    assert exchanges[1].response is None and exchanges[1].error == "http_400"
    assert exchanges[2].response["choices"][0]["message"]["content"] == "two"  # type: ignore[index]


@pytest.mark.parametrize(
    ("outputs", "url", "where", "says"),
    [
        (
            [answer("task-0", "a"), answer("task-1", "b")],
            "/v1/chat/completions",
            "in.jsonl:3",
            "'task-2' has no line",
        ),
        (
            [answer("task-0", "a"), answer("task-9", "b")],
            "/v1/chat/completions",
            "out.jsonl:2",
            "'task-9' is not in",
        ),
        ([answer("task-0", "a")], "/v1/embeddings", "in.jsonl:1", "only /v1/chat/completions"),
    ],
)
def test_bad_batch_files_are_named_and_nothing_is_written(
    tmp_path: Path, outputs: list[dict[str, Any]], url: str, where: str, says: str
) -> None:
    inp, out = batch_files(tmp_path, outputs, url)
    result = CliRunner().invoke(
        main,
        ["recordings", "import", str(inp), "--batch-output", str(out), "--name", "b"],
        env={"LUMBUNG_HOME": str(tmp_path / "h")},
    )
    assert result.exit_code == 1
    assert where in result.output and says in result.output
    assert not recording_path(tmp_path / "h", "b").exists()


def test_a_batch_input_file_alone_asks_for_its_output(tmp_path: Path) -> None:
    inp, _ = batch_files(tmp_path, [])
    result = CliRunner().invoke(
        main, ["recordings", "import", str(inp), "--name", "b"], env={"LUMBUNG_HOME": str(tmp_path)}
    )
    assert result.exit_code == 1 and "--batch-output" in result.output


def test_import_redacts_before_writing_and_refuses_to_overwrite(tmp_path: Path, pairs: Path) -> None:
    config = tmp_path / "lumbung.yaml"
    config.write_text(
        "recording:\n  redact:\n    patterns: ['Hi th\\w+']\n    paths: ['request.messages[*].content']\n"
    )
    home = tmp_path / "home"
    assert run(home, "import", str(pairs), "--name", "r", config=config).exit_code == 0
    data = recording_path(home, "r").read_bytes()
    assert b"Hi there" not in data and b"hello" not in data and b"[REDACTED]" in data
    again = CliRunner().invoke(
        main, ["recordings", "import", str(pairs), "--name", "r"], env={"LUMBUNG_HOME": str(home)}
    )
    assert again.exit_code == 1 and "--replace" in again.output
    assert run(home, "import", str(pairs), "--name", "r", "--replace").exit_code == 0
    assert b"hello" in recording_path(home, "r").read_bytes()


def test_rm_deletes_only_when_every_name_exists(tmp_path: Path, pairs: Path) -> None:
    home = tmp_path / "home"
    run(home, "import", str(pairs), "--name", "one")
    result = CliRunner().invoke(main, ["recordings", "rm", "one", "nope"], env={"LUMBUNG_HOME": str(home)})
    assert result.exit_code == 1 and "no recording 'nope'" in result.output
    assert recording_path(home, "one").exists()
    assert run(home, "rm", "one").exit_code == 0
    assert not recording_path(home, "one").exists()
    assert "no recordings" in run(home, "list").output


@pytest.mark.parametrize("command", ["list", "show", "export", "import", "rm"])
def test_every_command_has_help(tmp_path: Path, command: str) -> None:
    result = run(tmp_path, command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output
