"""Codex CLI 0.171, unmodified, against lumbung: ``codex exec`` with a custom model provider
(``wire_api = "responses"``, ``base_url`` at lumbung).

Installed from npm (tests/support/agents.py). One turn runs on the embedded model; a tool round trip
runs on a route whose target is a scripted fake provider (it calls Codex's ``exec_command`` tool, then
answers with text quoting the tool's output), so the agent's loop crosses lumbung's Responses <->
core <-> OpenAI translation both ways. Codex offers a ``namespace`` tool and ``web_search`` with
every request: both must pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.agents import LOCAL, LOCAL_TURNS, MODEL, SECRET, codex_exec
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


@pytest.mark.timeout(3600)
@LOCAL_TURNS
def test_a_turn_on_the_local_model(start_server: object, agent_project: Path) -> None:
    """Codex's first prompt is several thousand tokens: the embedded gemma3:270m (trained on 32k) serves it
    with its whole context. On a small CPU the prompt alone takes minutes."""
    srv: ServerProcess = start_server(config=LOCAL)  # type: ignore[operator]
    run = codex_exec(srv.base_url, MODEL, "Say hi.", workdir=agent_project, timeout=3300)
    assert run.returncode == 0, run
    log = srv.logs()
    assert '"path":"/v1/responses","status":200' in log.replace(" ", ""), log
    assert "Traceback" not in log and "Task was destroyed" not in log, log
