"""Claude Code 2.1, unmodified, against lumbung (``ANTHROPIC_BASE_URL``), in print mode.

Installed from npm (tests/support/agents.py). One turn runs on the embedded model; a tool round trip
runs on a route whose target is a scripted fake provider (it calls Claude Code's Read tool, then
answers with text quoting the tool's result), so the agent's loop crosses lumbung's Anthropic <->
core <-> OpenAI translation both ways.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.agents import CLAUDE_LOCAL_TURN, LOCAL, MODEL, SECRET, claude_code
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import ServerProcess


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_tool_round_trip_through_a_route(
    kind: str, scripted_provider: FakeUpstream, start_server: object, agent_project: Path
) -> None:
    """The provider speaks OpenAI's chat completions, or Anthropic's Messages (the typed path both
    ways: system messages mid-conversation are hoisted into ``system`` for it)."""
    scripted_provider.agent_tool = "Read"
    scripted_provider.agent_arguments = {"file_path": str(agent_project / "notes.txt")}
    config = {
        "serve_default_model": False,
        "providers": [
            {"name": "scripted", "kind": kind, "base_url": scripted_provider.base_url, "jurisdiction": "ID"}
        ],
        "routes": [{"name": "agent", "tiers": [["scripted/m1"]]}],
    }
    srv: ServerProcess = start_server(config=config)  # type: ignore[operator]
    run = claude_code(srv.base_url, "agent", "What does notes.txt say?", workdir=agent_project, timeout=300)
    assert run.returncode == 0, run
    assert SECRET in run.stdout, run
    path = "/chat/completions" if kind == "openai" else "/messages"
    turns = [s.body for s in scripted_provider.seen if s.path.endswith(path) and s.body.get("tools")]
    assert len(turns) >= 2, [s.path for s in scripted_provider.seen]
    # The first turn offered Claude Code's tools; the next carried Read's result back.
    assert "Read" in {t["function"]["name"] if kind == "openai" else t["name"] for t in turns[0]["tools"]}
    assert FakeUpstream.tool_result(turns[0]) is None
    result = FakeUpstream.tool_result(turns[-1])
    assert result is not None and SECRET in result, turns[-1]["messages"][-3:]
    assert "Traceback" not in srv.logs()


@pytest.mark.timeout(3600)
@CLAUDE_LOCAL_TURN
def test_a_turn_on_the_local_model(start_server: object, agent_project: Path) -> None:
    """Claude Code's first prompt is ~19.5k tokens: the embedded gemma3:270m (trained on 32k) serves
    it with its whole context. On a small CPU the prompt alone takes about five minutes, longer than
    Claude Code waits for an event other than a ping: lumbung keeps the stream alive meanwhile."""
    srv: ServerProcess = start_server(config=LOCAL)  # type: ignore[operator]
    run = claude_code(srv.base_url, MODEL, "Say hi.", workdir=agent_project, timeout=3300)
    assert run.returncode == 0, run
    assert run.stdout.strip(), run
    assert "Traceback" not in srv.logs()
