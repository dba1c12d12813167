"""Tool calls from remote providers stream through the gateway's typed path as they arrive: an
Anthropic client on an OpenAI-compatible provider gets ``input_json_delta`` pieces, an OpenAI client on
an Anthropic provider gets ``arguments`` fragments. Fake providers on 127.0.0.1 stream a call to the
first tool offered in several pieces (tests/support/fake_upstream.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from tests.conftest import Closing
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import ServerProcess

ARGUMENTS = {"city": "Jakarta", "days": 3}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home: Path = tmp_path_factory.mktemp("tool-streaming")
    fakes = {"oai": FakeUpstream(name="oai").start(), "claude": FakeUpstream(name="claude").start()}
    providers = [
        {"name": "oai", "kind": "openai", "base_url": fakes["oai"].base_url, "jurisdiction": "ID"},
        {"name": "claude", "kind": "anthropic", "base_url": fakes["claude"].base_url, "jurisdiction": "US"},
    ]
    routes = [
        {"name": "on-openai", "tiers": [["oai/m1"]], "passthrough": False},
        {"name": "on-anthropic", "tiers": [["claude/m1"]]},
    ]
    config = {"serve_default_model": False, "providers": providers, "routes": routes}
    srv = ServerProcess(home, config=config).start(timeout=60)
    yield srv
    srv.stop()
    for fake in fakes.values():
        fake.stop()


def test_anthropic_client_gets_an_openai_providers_call_in_pieces(
    server: ServerProcess, closing: Closing
) -> None:
    client = closing(anthropic.Anthropic(base_url=server.base_url, api_key="k", max_retries=0))
    tools = [{"name": "weather", "description": "Weather", "input_schema": {"type": "object"}}]
    pieces: list[str] = []
    with client.messages.stream(
        model="on-openai",
        max_tokens=50,
        tools=tools,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "weather?"}],
    ) as stream:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                pieces.append(event.delta.partial_json)
        final = stream.get_final_message()
    assert len([p for p in pieces if p]) >= 3, pieces
    assert json.loads("".join(pieces)) == ARGUMENTS
    assert final.stop_reason == "tool_use"
    block = final.content[-1]
    assert block.type == "tool_use" and block.name == "weather" and block.input == ARGUMENTS


def test_openai_client_gets_an_anthropic_providers_call_in_fragments(
    server: ServerProcess, closing: Closing
) -> None:
    client = closing(openai.OpenAI(base_url=server.base_url + "/v1", api_key="k", max_retries=0))
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    fragments: list[str] = []
    with client.chat.completions.stream(
        model="on-anthropic",
        tools=tools,  # type: ignore[list-item]
        messages=[{"role": "user", "content": "weather?"}],
    ) as stream:
        for event in stream:
            if event.type == "tool_calls.function.arguments.delta":
                fragments.append(event.arguments_delta)
        final = stream.get_final_completion()
    assert len([f for f in fragments if f]) >= 3, fragments
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "weather" and json.loads(call.function.arguments) == ARGUMENTS
    assert "".join(fragments) == call.function.arguments
    assert final.choices[0].finish_reason == "tool_calls"
    # Without streaming the same call comes whole.
    whole = client.chat.completions.create(
        model="on-anthropic",
        tools=tools,  # type: ignore[list-item]
        messages=[{"role": "user", "content": "weather?"}],
    )
    assert json.loads(whole.choices[0].message.tool_calls[0].function.arguments) == ARGUMENTS  # type: ignore[index, union-attr]
