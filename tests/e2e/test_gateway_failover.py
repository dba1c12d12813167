"""Failover through a real `lumbung serve`, with the `openai` SDK as client and fake upstream providers on
127.0.0.1 that misbehave on command (tests/support/fake_upstream.py).

One server holds a route per misbehaviour: ``via-MODE`` = [primary misbehaving with MODE] then
[a healthy backup], so each test reads one route's outcome without disturbing the others.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Closing
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import ServerProcess, free_port

FAILURES = [
    "hang_before_headers",
    "hang_after_headers",
    "reset_after",
    "429",
    "500",
    "403_region",
    "error_event",
    "invalid_utf8",
]
PATHS = ["via", "typed"]  # via: OpenAI bytes pass through; typed: parsed and re-rendered
TIMEOUTS = {"connect": 1.0, "first_token": 1.0, "idle": 1.0, "total": 20.0}
MSG = [{"role": "user", "content": "hi"}]


class Rig:
    def __init__(self, home: Path, log_dir: Path) -> None:
        self.fakes: dict[str, FakeUpstream] = {}
        providers: list[dict[str, Any]] = []
        routes: list[dict[str, Any]] = []

        def fake(name: str, kind: str = "openai", **mode: Any) -> str:
            up = FakeUpstream(name=name).start()
            if mode:
                up.set(mode.pop("mode"), **mode)
            self.fakes[name] = up
            providers.append(
                {
                    "name": name,
                    "kind": kind,
                    "base_url": up.base_url,
                    "jurisdiction": "ID",
                    "timeouts": TIMEOUTS,
                }
            )
            return name

        backup = fake("backup")
        for path in PATHS:
            for mode in FAILURES:
                primary = fake(f"{path}-{mode}", mode=mode, k=0, retry_after=None if mode == "429" else 1.0)
                routes.append(
                    {
                        "name": f"{path}-{mode}",
                        "tiers": [[f"{primary}/m1"], [f"{backup}/m1"]],
                        "passthrough": path == "via",
                    }
                )
            for name in ("mid-reset", "mid-error", "slow"):
                fake(f"{path}-{name}")
                tiers = [[f"{path}-{name}/m1"], [f"{backup}/m1"]]
                routes.append({"name": f"{path}-{name}", "tiers": tiers, "passthrough": path == "via"})
        providers.append(
            {
                "name": "dead",
                "kind": "openai",
                "base_url": f"http://127.0.0.1:{free_port()}/v1",
                "jurisdiction": "ID",
            }
        )
        routes.append({"name": "via-dead", "tiers": [["dead/m1"], [f"{backup}/m1"]]})
        routes.append({"name": "typed-dead", "tiers": [["dead/m1"], [f"{backup}/m1"]], "passthrough": False})
        fake("twin-a")
        fake("twin-b")
        routes.append({"name": "affine", "tiers": [["twin-a/m1", "twin-b/m1"]], "prefix_affinity": True})
        for name in ("flaky", "lonely", "claude"):
            kind = "anthropic" if name == "claude" else "openai"
            fake(name, kind)
            tiers = [[f"{name}/m1"]] if name == "lonely" else [[f"{name}/m1"], [f"{backup}/m1"]]
            routes.append({"name": f"via-{name}", "tiers": tiers})
        fake("claude-down", "anthropic", mode="error_event")
        routes.append({"name": "via-claude-down", "tiers": [["claude-down/m1"], ["claude/m1"]]})
        routes.append(
            {"name": "via-429-ra", "tiers": [[f"{fake('ra', mode='429', retry_after=30)}/m1"], ["backup/m1"]]}
        )
        config = {
            "serve_default_model": False,
            "providers": providers,
            "routes": routes,
            "request_timeout": 30,
        }
        self.server = ServerProcess(home, config=config, log_dir=log_dir).start(timeout=60)
        self.client = openai.OpenAI(base_url=self.server.base_url + "/v1", api_key="k", max_retries=0)

    def stop(self) -> None:
        self.client.close()
        self.server.stop()
        for up in self.fakes.values():
            up.stop()

    def request_log(self, model: str) -> list[dict[str, Any]]:
        """The server's one-line-per-request log entries for ``model``."""
        out = []
        for line in self.server.logs().splitlines():
            if "lumbung.access" in line and '"event":"request"' in line:
                entry = json.loads(line[line.index("{") :])
                if entry.get("model") == model:
                    out.append(entry)
        return out

    def status(self, provider: str) -> dict[str, Any]:
        body = httpx.get(self.server.base_url + "/admin/providers").json()
        return next(p for p in body["providers"] if p["name"] == provider)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, lumbung_home: Path) -> Iterator[Rig]:
    r = Rig(lumbung_home, tmp_path_factory.mktemp("gateway-logs"))
    yield r
    r.stop()


def text_of(rig: Rig, model: str, stream: bool) -> str:
    if stream:
        chunks = rig.client.chat.completions.create(model=model, messages=MSG, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    done = rig.client.chat.completions.create(model=model, messages=MSG)
    assert done.model == model and done.usage and done.usage.completion_tokens == 6
    return done.choices[0].message.content or ""


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mode", FAILURES)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_misbehaving_primary_fails_over_before_the_first_byte(
    rig: Rig, path: str, mode: str, stream: bool
) -> None:
    primary = rig.fakes[f"{path}-{mode}"]
    before = len(primary.seen)
    assert text_of(rig, f"{path}-{mode}", stream) == "Hello w1 w2 w3 w4 from backup"
    assert len(primary.seen) <= before + 1
    assert len(rig.fakes[f"{path}-{mode}"].seen) >= 1  # the primary was tried
    # Pass-through sends the body as the client did; the typed path always streams from upstream.
    sent = rig.fakes["backup"].seen[-1].body
    assert sent.get("stream", False) is (stream if path == "via" else True) and sent["model"] == "m1"


def test_region_refusal_marks_the_provider_cut_off(rig: Rig) -> None:
    text_of(rig, "via-403_region", False)
    status = rig.status("via-403_region")
    assert status["health"] == "cut_off"
    assert "unsupported_country_region_territory" in status["cut_off"]["reason"]
    assert status["cut_off"]["for_s"] > 3000
    seen = len(rig.fakes["via-403_region"].seen)
    for _ in range(3):
        text_of(rig, "via-403_region", True)
    assert len(rig.fakes["via-403_region"].seen) == seen  # no traffic to a cut-off provider


def test_retry_after_keeps_traffic_away_for_that_long(rig: Rig) -> None:
    for _ in range(4):
        assert text_of(rig, "via-429-ra", False).endswith("from backup")
    assert len(rig.fakes["ra"].seen) == 1
    assert rig.status("ra")["targets"][0]["rate_limited_for_s"] > 25


def test_repeated_failures_open_the_breaker(rig: Rig) -> None:
    flaky = rig.fakes["flaky"]
    flaky.set("500")
    for _ in range(5):
        assert text_of(rig, "via-flaky", False).endswith("from backup")
    assert len(flaky.seen) == 3
    assert rig.status("flaky")["targets"][0]["breaker"] == "open"
    assert rig.status("flaky")["health"] == "down"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mode", ["reset_after", "error_after"])
def test_failure_after_the_first_byte_is_an_error_event_never_a_retry(rig: Rig, path: str, mode: str) -> None:
    name = f"{path}-mid-reset" if mode == "reset_after" else f"{path}-mid-error"
    up, backup = rig.fakes[name], rig.fakes["backup"]
    up.set(mode, k=2)
    backup_before = len(backup.seen)
    got = []
    with pytest.raises(openai.APIError) as err:
        for chunk in rig.client.chat.completions.create(model=name, messages=MSG, stream=True):
            if chunk.choices:
                got.append(chunk.choices[0].delta.content or "")
    assert "".join(got) == "Hello w1"
    assert "upstream" in str(err.value).lower() or "provider" in str(err.value).lower()
    assert len(backup.seen) == backup_before  # nothing retried after the first byte
    up.set("ok")


@pytest.mark.parametrize("path", PATHS)
def test_a_stream_cut_after_the_first_byte_never_ends_with_done(rig: Rig, path: str) -> None:
    rig.fakes[f"{path}-mid-reset"].set("reset_after", k=1)
    with httpx.stream(
        "POST",
        rig.server.base_url + "/v1/chat/completions",
        json={"model": f"{path}-mid-reset", "messages": MSG, "stream": True},
    ) as r:
        body = r.read().decode()
    rig.fakes[f"{path}-mid-reset"].set("ok")
    assert r.status_code == 200
    assert "[DONE]" not in body
    assert body.rstrip().splitlines()[-1].startswith('data: {"error"')


def test_every_target_failing_is_a_clear_error(rig: Rig) -> None:
    rig.fakes["lonely"].set("500")
    with pytest.raises(openai.InternalServerError) as err:
        rig.client.chat.completions.create(model="via-lonely", messages=MSG)
    assert err.value.status_code == 502
    assert "answered 500" in err.value.message
    rig.fakes["lonely"].set("ok")


def test_anthropic_upstream_streams_and_fails_over(rig: Rig) -> None:
    assert text_of(rig, "via-claude", True) == "Hello w1 w2 w3 w4 from claude"
    assert text_of(rig, "via-claude", False) == "Hello w1 w2 w3 w4 from claude"
    body = rig.fakes["claude"].seen[-1]
    assert body.path == "/v1/messages" and body.headers["anthropic-version"] == "2023-06-01"
    assert body.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert text_of(rig, "via-claude-down", True) == "Hello w1 w2 w3 w4 from claude"


@pytest.mark.parametrize("path", PATHS)
def test_client_disconnect_cancels_the_upstream_within_a_second(rig: Rig, path: str) -> None:
    slow = rig.fakes[f"{path}-slow"]
    slow.set("slow", delay=0.3, words=40)
    before = len(slow.disconnects)
    stream = rig.client.chat.completions.create(model=f"{path}-slow", messages=MSG, stream=True)
    for i, _ in enumerate(stream):
        if i == 2:
            break
    stream.close()
    gone = time.monotonic()
    while len(slow.disconnects) == before and time.monotonic() - gone < 5:
        time.sleep(0.02)
    slow.set("ok", words=6)
    assert len(slow.disconnects) > before
    assert slow.disconnects[-1] - gone < 1.0


@pytest.mark.parametrize("path", PATHS)
async def test_no_request_is_lost_while_a_provider_fails(rig: Rig, path: str) -> None:
    flaky = rig.fakes[f"{path}-mid-error"]
    flaky.set("ok")
    logged_before = len(rig.request_log(f"{path}-mid-error"))
    async with openai.AsyncOpenAI(base_url=rig.server.base_url + "/v1", api_key="k", max_retries=0) as client:

        async def one(i: int) -> str:
            if i == 10:
                flaky.set("hang_before_headers")
            if i == 25:
                flaky.set("500")
            stream = i % 2 == 0
            if stream:
                chunks = await client.chat.completions.create(
                    model=f"{path}-mid-error", messages=MSG, stream=True
                )
                return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
            done = await client.chat.completions.create(model=f"{path}-mid-error", messages=MSG)
            return done.choices[0].message.content or ""

        results = []
        for batch in range(4):
            results += await asyncio.gather(*(one(batch * 10 + i) for i in range(10)), return_exceptions=True)
    flaky.set("ok")
    assert len(results) == 40
    assert [r for r in results if not isinstance(r, str)] == []
    assert all(r.startswith("Hello w1 w2 w3 w4 from ") for r in results if isinstance(r, str))
    # Exactly one outcome each on the server's side too: one request log line per request, all 200.
    deadline = time.monotonic() + 5
    while len(rig.request_log(f"{path}-mid-error")) < logged_before + 40 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    lines = rig.request_log(f"{path}-mid-error")[logged_before:]
    assert len(lines) == 40 and all(line["status"] == 200 and "error" not in line for line in lines)


@pytest.mark.parametrize("path", PATHS)
def test_a_provider_that_refuses_connections_is_skipped(rig: Rig, path: str) -> None:
    for stream in (False, True):
        assert text_of(rig, f"{path}-dead", stream).endswith("from backup")
    assert "cannot connect" in (rig.status("dead")["targets"][0]["last_error"] or "")


@pytest.mark.parametrize("path", PATHS)
def test_silence_after_the_first_byte_ends_the_stream_with_an_error_event(rig: Rig, path: str) -> None:
    up = rig.fakes[f"{path}-mid-reset"]
    up.set("stall_after", k=1)
    with httpx.stream(
        "POST",
        rig.server.base_url + "/v1/chat/completions",
        json={"model": f"{path}-mid-reset", "messages": MSG, "stream": True},
        timeout=10,
    ) as r:
        body = r.read().decode()
    up.set("ok")
    last = body.rstrip().splitlines()[-1]
    assert "[DONE]" not in body and last.startswith('data: {"error"') and "Hello" in body
    assert "timed out" in last or "timeout" in last


def test_prefix_affinity_keeps_a_shared_prefix_on_one_replica(rig: Rig) -> None:
    a, b = rig.fakes["twin-a"], rig.fakes["twin-b"]
    system = {"role": "system", "content": "You are the barn keeper. " * 100}
    picked = set()
    for i in range(6):
        done = rig.client.chat.completions.create(
            model="affine", messages=[system, {"role": "user", "content": f"question {i}"}]
        )
        picked.add((done.choices[0].message.content or "").split()[-1])
    assert len(picked) == 1  # every request with this system prompt went to the same replica
    others = set()
    for i in range(12):
        done = rig.client.chat.completions.create(
            model="affine", messages=[{"role": "system", "content": f"prompt {i} " * 300}, MSG[0]]
        )
        others.add((done.choices[0].message.content or "").split()[-1])
    assert others == {"twin-a", "twin-b"}  # different prefixes spread over both
    assert len(a.seen) + len(b.seen) == 18


def test_anthropic_sdk_client_gets_failover_too(rig: Rig, closing: Closing) -> None:
    import anthropic

    client = closing(anthropic.Anthropic(base_url=rig.server.base_url, api_key="k", max_retries=0))
    for route in ("typed-500", "via-403_region", "via-claude-down"):
        message = client.messages.create(
            model=route, max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
        assert message.content[0].type == "text" and message.content[0].text.startswith("Hello w1")
        assert message.usage.output_tokens == 6
    with client.messages.stream(
        model="via-claude-down", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        assert "".join(stream.text_stream) == "Hello w1 w2 w3 w4 from claude"


def test_anthropic_sdk_streams_from_openai_providers(rig: Rig, closing: Closing) -> None:
    """OpenAI-compatible providers cannot count tokens up front: message_start says 0, the final
    message_delta carries the real usage."""
    import anthropic

    client = closing(anthropic.Anthropic(base_url=rig.server.base_url, api_key="k", max_retries=0))
    with client.messages.stream(
        model="via-500", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "Hello w1 w2 w3 w4 from backup"
    assert final.usage.output_tokens == 6 and final.usage.input_tokens == 5


def test_a_whole_answer_broken_midway_is_answered_by_the_backup(rig: Rig, closing: Closing) -> None:
    """Nothing reaches a non-streaming client before the answer is complete, so a provider that dies
    mid-answer is failed over like one that never answered (typed path; pass-through asks whole)."""
    import anthropic

    up = rig.fakes["typed-mid-reset"]
    up.set("reset_after", k=3)
    try:
        done = rig.client.chat.completions.create(model="typed-mid-reset", messages=MSG)
        assert done.choices[0].message.content == "Hello w1 w2 w3 w4 from backup"
        message = closing(
            anthropic.Anthropic(base_url=rig.server.base_url, api_key="k", max_retries=0)
        ).messages.create(
            model="typed-mid-reset", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
        assert message.content[0].type == "text" and message.content[0].text.endswith("from backup")
    finally:
        up.set("ok")
