"""A vLLM server's LoRA adapters (`--lora-modules NAME=PATH`) are route targets like its base model:
`provider/NAME` forwards NAME as the upstream model, on the pass-through and on the typed path, and
the client sees the route's name. The fake upstream stands in for vLLM (no GPU here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e
MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def rig(lumbung_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeUpstream, str]]:
    up = FakeUpstream(name="vllm").start()
    config = {
        "serve_default_model": False,
        "providers": [{"name": "vllm", "kind": "openai", "base_url": up.base_url, "jurisdiction": "ID"}],
        "routes": [
            {"name": "sql", "tiers": [["vllm/sql-lora"]]},
            {"name": "sql-typed", "tiers": [["vllm/sql-lora"]], "passthrough": False},
            {"name": "base", "tiers": [["vllm/meta-llama/Llama-3.1-8B-Instruct"]]},
        ],
    }
    server = ServerProcess(lumbung_home, config=config, log_dir=tmp_path_factory.mktemp("lora-routes"))
    server.start(timeout=60)
    yield up, server.base_url
    server.stop()
    up.stop()


@pytest.mark.parametrize("route", ["sql", "sql-typed"])
@pytest.mark.parametrize("stream", [False, True])
def test_an_adapter_route_forwards_the_adapter_name(
    rig: tuple[FakeUpstream, str], route: str, stream: bool
) -> None:
    up, url = rig
    with openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as client:
        if stream:
            chunks = list(client.chat.completions.create(model=route, messages=MSG, stream=True))  # type: ignore[arg-type]
            assert {c.model for c in chunks} == {route}
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            done = client.chat.completions.create(model=route, messages=MSG)  # type: ignore[arg-type]
            assert done.model == route
            text = done.choices[0].message.content or ""
        assert text.endswith("from vllm")
        assert up.seen[-1].body["model"] == "sql-lora"
        client.chat.completions.create(model="base", messages=MSG)  # type: ignore[arg-type]
        assert up.seen[-1].body["model"] == "meta-llama/Llama-3.1-8B-Instruct"
