"""`lumbung run` as a real process: through a pseudo-terminal (pexpect) and through a pipe, talking to
a real `lumbung serve` and, when none answers at LUMBUNG_HOST, loading the embedded model itself.

Answers are greedy (`--temperature 0`) and compared with the server's own answer to the same
messages over the OpenAI API: what the terminal sent (system message, multi-line text, history) is
what the model saw. The shared server runs without a prefix cache, so greedy text is reproducible.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pexpect
import pytest

from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.e2e
MAX_TOKENS = 12


def greedy(server: ServerProcess, messages: list[dict[str, str]]) -> str:
    body: dict[str, Any] = {
        "model": "default",
        "messages": messages,
        "temperature": 0,
        "max_tokens": MAX_TOKENS,
    }
    response = httpx.post(server.base_url + "/v1/chat/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def run_env(home: Path, host: str) -> dict[str, str]:
    env = {**os.environ, "LUMBUNG_HOME": str(home), "LUMBUNG_HOST": host, "LUMBUNG_PREFIX_CACHE_MB": "0"}
    env.pop("LUMBUNG_CONFIG", None)
    return env


def nobody_listening() -> str:
    return f"127.0.0.1:{free_port()}"


def cmd(*args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lumbung",
        "run",
        "default",
        "--temperature",
        "0",
        "--max-tokens",
        str(MAX_TOKENS),
        *args,
    ]


def spawn(env: dict[str, str], *args: str) -> pexpect.spawn:
    child = pexpect.spawn(cmd(*args)[0], cmd(*args)[1:], env=env, encoding="utf-8", timeout=180)
    child.setwinsize(40, 200)
    return child


def ask(child: pexpect.spawn, line: str) -> str:
    """Type a line; the answer printed before the next prompt (the terminal echoes the line first,
    and writes \\r\\n)."""
    child.sendline(line)
    child.expect_exact(line + "\r\n")
    child.expect_exact(">>> ")
    return str(child.before).replace("\r\n", "\n").strip("\n")


def test_pipe_answers_once_like_the_server(server: ServerProcess, lumbung_home: Path) -> None:
    prompt = "Name three colours."
    out = subprocess.run(
        cmd(),
        input=prompt,
        env=run_env(lumbung_home, server.base_url),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == greedy(server, [{"role": "user", "content": prompt}]).strip()
    assert "this process" not in out.stderr  # it used the server


def test_prompt_argument_and_stdin_join_and_verbose_reports(
    server: ServerProcess, lumbung_home: Path
) -> None:
    out = subprocess.run(
        cmd("Summarise:", "--verbose"),
        input="The cat sat on the mat.",
        env=run_env(lumbung_home, server.base_url),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    expected = greedy(server, [{"role": "user", "content": "Summarise:\n\nThe cat sat on the mat."}])
    assert out.stdout.strip() == expected.strip()
    for line in ("time to first token:", "eval rate:", "prompt eval count:"):
        assert line in out.stderr
    # The default model may end its answer before MAX_TOKENS: the count is the answer's own.
    counted = re.search(r"^eval count:\s+(\d+) token", out.stderr, re.MULTILINE)
    assert counted and 1 <= int(counted.group(1)) <= MAX_TOKENS


def test_terminal_chat_with_system_multiline_history_and_clear(
    server: ServerProcess, lumbung_home: Path
) -> None:
    child = spawn(run_env(lumbung_home, server.base_url))
    try:
        child.expect_exact(">>> ")
        child.sendline("/set system You are a helpful assistant.")
        child.expect_exact("Set system message.")
        child.expect_exact(">>> ")
        child.sendline('"""')
        child.expect_exact("... ")
        child.sendline("Write a list:")
        child.expect_exact("... ")
        first = ask(child, 'apples and pears"""')
        system = {"role": "system", "content": "You are a helpful assistant."}
        question = {"role": "user", "content": "Write a list:\napples and pears"}
        assert first == greedy(server, [system, question]).strip()

        second = ask(child, "And more?")
        history = [system, question, {"role": "assistant", "content": first}]
        assert second == greedy(server, [*history, {"role": "user", "content": "And more?"}]).strip()

        child.sendline("/clear")
        child.expect_exact("Cleared session context.")
        child.expect_exact(">>> ")
        assert (
            ask(child, "And more?")
            == greedy(server, [system, {"role": "user", "content": "And more?"}]).strip()
        )

        child.sendline("/nonsense")
        child.expect_exact("Unknown command '/nonsense'")
        child.expect_exact(">>> ")
        child.sendline("/bye")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_unknown_model_is_named_and_exits_nonzero(server: ServerProcess, lumbung_home: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lumbung", "run", "no-such-model", "hi"],
        env=run_env(lumbung_home, server.base_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "no-such-model" in out.stderr


def test_in_process_when_no_server_answers(server: ServerProcess, lumbung_home: Path) -> None:
    """Nothing listens at LUMBUNG_HOST: the model loads in the `lumbung run` process, with the same
    greedy answer the server gives, through a pipe and through the terminal."""
    env = run_env(lumbung_home, nobody_listening())
    prompt = "Name three colours."
    expected = greedy(server, [{"role": "user", "content": prompt}]).strip()
    out = subprocess.run(cmd(), input=prompt, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "in this process" in out.stderr
    assert out.stdout.strip() == expected

    child = spawn(env, "--verbose")
    try:
        child.expect_exact("in this process")
        child.expect_exact(">>> ")
        child.sendline(prompt)
        child.expect_exact("eval rate:")
        assert expected in str(child.before).replace("\r\n", "\n")
        child.expect_exact(">>> ")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_ctrl_c_stops_the_answer_not_the_session(server: ServerProcess, lumbung_home: Path) -> None:
    long_prompt = "Count from 1 to 1000, one number per line."
    body = {"model": "default", "messages": [{"role": "user", "content": long_prompt}], "temperature": 0}
    done = httpx.post(server.base_url + "/v1/chat/completions", json={**body, "max_tokens": 120}, timeout=300)
    assert done.json()["choices"][0]["finish_reason"] == "length"  # it would run on: there is time to stop it
    child = spawn(run_env(lumbung_home, server.base_url), "--max-tokens", "120", "--verbose")
    try:
        child.expect_exact(">>> ")
        child.sendline(long_prompt)
        child.expect_exact(long_prompt + "\r\n")
        child.expect(r"\S")  # the answer has started
        child.sendintr()
        child.expect_exact(">>> ")
        assert "eval rate" not in str(child.before)  # stopped: no timings for an answer cut short
        # The cut answer is not part of the conversation: the next one is the answer without history.
        child.sendline("Say hello.")
        child.expect_exact("Say hello.\r\n")
        child.expect_exact("eval rate")
        answer = str(child.before).replace("\r\n", "\n").split("\n\ntotal duration")[0].strip("\n")
        expected = greedy(server, [{"role": "user", "content": "Say hello."}]).strip()
        assert answer.startswith(expected[:20])
        child.sendline("/bye")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
