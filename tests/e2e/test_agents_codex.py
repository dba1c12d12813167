"""Codex CLI 0.171, unmodified, against lumbung: ``codex exec`` with a custom model provider
(``wire_api = "responses"``, ``base_url`` at lumbung).

Installed from npm (tests/support/agents.py). One turn runs on the embedded SmolLM2; a tool round trip
runs on a route whose target is a scripted fake provider (it calls Codex's ``exec_command`` tool, then
answers with text quoting the tool's output), so the agent's loop crosses lumbung's Responses <->
core <-> OpenAI translation both ways. Codex offers a ``namespace`` tool and ``web_search`` with
every request: both must pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.agents import SECRET, codex_exec
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import ServerProcess


def test_tool_round_trip_through_a_route(
    scripted_provider: FakeUpstream, start_server: object, agent_project: Path
) -> None:
    scripted_provider.agent_tool = "exec_command"
    scripted_provider.agent_arguments = {"cmd": "cat notes.txt"}
    config = {
        "serve_default_model": False,
        "providers": [
            {
                "name": "scripted",
                "kind": "openai",
                "base_url": scripted_provider.base_url,
                "jurisdiction": "ID",
            }
        ],
        "routes": [{"name": "agent", "tiers": [["scripted/m1"]]}],
    }
    srv: ServerProcess = start_server(config=config)  # type: ignore[operator]
    run = codex_exec(srv.base_url, "agent", "What does notes.txt say?", workdir=agent_project, timeout=300)
    assert run.returncode == 0, run
    turns = [
        s.body for s in scripted_provider.seen if s.path.endswith("/chat/completions") and s.body.get("tools")
    ]
    assert len(turns) >= 2, [s.path for s in scripted_provider.seen]
    names = {t["function"]["name"] for t in turns[0]["tools"]}
    assert "exec_command" in names and "spawn_agent" in names  # namespace tools, flattened
    assert FakeUpstream.tool_result(turns[0]) is None
    result = FakeUpstream.tool_result(turns[-1])
    assert result is not None and SECRET in result, turns[-1]["messages"][-3:]
    assert "The tool said" in run.stdout and SECRET in run.stdout, run
    log = srv.logs()
    assert "Traceback" not in log and "Task was destroyed" not in log, log


@pytest.mark.timeout(1200)
def test_a_turn_on_the_local_model(start_server: object, agent_project: Path, lumbung_home: Path) -> None:
    """Codex's first prompt (8.8k SmolLM2 tokens with its tools) on smollm2:135m, which answers and
    stops; past SmolLM2's trained 8k only by the RoPE scaling a user asks for in the model's entry."""
    pulled = subprocess.run(
        [sys.executable, "-m", "lumbung", "pull", "smollm2:135m"],  # the embedded file, into the store
        env={**os.environ, "LUMBUNG_HOME": str(lumbung_home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pulled.returncode == 0, pulled.stderr
    model = {"id": "smollm2-16k", "ref": "smollm2:135m", "context_size": 16384, "rope_scaling": "yarn"}
    config = {
        "serve_default_model": False,
        "models": [model],
        "parallel": 1,
        "request_timeout": 1200,
        "prefix_cache_mb": 512,
    }
    srv: ServerProcess = start_server(config=config)  # type: ignore[operator]
    # Codex drops a stream after 300 s without an event (lumbung's keep-alives are SSE comments,
    # which it does not count); a user serving a model on a slow CPU raises the provider's limit.
    slow_cpu = "stream_idle_timeout_ms = 1200000\n"
    run = codex_exec(
        srv.base_url, "smollm2-16k", "Say hi.", workdir=agent_project, timeout=1100, provider_extra=slow_cpu
    )
    assert run.returncode == 0, run
    log = srv.logs()
    turns = [line for line in log.splitlines() if '"path":"/v1/responses"' in line]
    # One request, answered whole: a cut answer (response.incomplete) would make Codex ask again.
    assert len(turns) == 1 and '"status":200' in turns[0] and '"error"' not in turns[0], log
    assert "Traceback" not in log and "Task was destroyed" not in log, log
