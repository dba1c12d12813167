"""The dashboard's endpoints in process (ui/routes.py): pages and assets without a key, data for
operator keys only, the overview and its failover timeline after a real failover through the gateway,
the event stream, and verify on a stored model. The pages themselves run in a real browser:
tests/e2e/test_ui_browser.py."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from lumbung.clock import FakeClock
from lumbung.errors import ProviderCutOff
from lumbung.gateway.timeline import Timeline
from lumbung.proof.report import Report
from lumbung.store.pull import add_file
from lumbung.store.refs import parse_reference
from lumbung.store.store import ModelStore
from lumbung.ui.static import assets
from tests.support.fake_backend import Fail, FakeBackend
from tests.support.fake_upstream import FakeUpstream
from tests.support.gguf_files import write_gguf
from tests.support.inprocess import in_process, route

OPERATOR, API = "op-secret", "api-secret"
CHAT = {"model": "r", "messages": [{"role": "user", "content": "hi"}]}


def test_an_outage_counts_moved_requests_and_ends_when_the_provider_answers() -> None:
    clock = FakeClock()
    start = clock()
    timeline = Timeline(clock, wall=lambda: 1000.0 + clock() - start)
    timeline.moved("r", [("a", "403 region")], "b/m")
    clock.advance(5)
    timeline.moved("r", [("a", "403 region"), ("a", "403 region")], "b/m")
    [ongoing] = timeline.snapshot()
    assert ongoing | {"lasted_s": 0} == {
        "route": "r",
        "provider": "a",
        "reason": "403 region",
        "at": 1000.0,
        "to": "b/m",
        "moved": 2,
        "ongoing": True,
        "lasted_s": 0,
    }
    assert ongoing["lasted_s"] == 5.0
    clock.advance(7)
    timeline.answered("r", "a", "a/m")
    clock.advance(100)
    [ended] = timeline.snapshot()
    assert not ended["ongoing"] and ended["lasted_s"] == 12.0
    assert timeline.serving["r"] == ("a/m", 1012.0)
    timeline.moved("r", [("a", "500")], None)  # a new outage, with nowhere to go
    newest, older = timeline.snapshot()
    assert newest["to"] is None and newest["ongoing"] and older is not newest


def test_the_timeline_forgets_the_oldest_outages_first() -> None:
    timeline = Timeline(FakeClock(), keep=3)
    for i in range(5):
        timeline.moved(f"r{i}", [("a", "x")], "b/m")
    assert [o["route"] for o in timeline.snapshot()] == ["r4", "r3", "r2"]


def cut_off_rig(tmp_path: Path, **settings: Any) -> Any:
    a = FakeBackend("a", ["m"], script=[Fail(ProviderCutOff("unsupported_country_region_territory"))])
    b = FakeBackend("b", ["m"])
    return in_process(tmp_path, providers={"a": a, "b": b}, routes=[route("r", ["a"], ["b"])], **settings)


async def test_the_overview_shows_a_cut_off_provider_and_where_its_traffic_went(tmp_path: Path) -> None:
    async with cut_off_rig(tmp_path) as lb:
        answer = await lb.client.post("/v1/chat/completions", json=CHAT)
        assert answer.status_code == 200
        assert answer.headers["x-lumbung-target"] == "b/m"  # which provider answered
        body = (await lb.client.get("/ui/api/overview")).json()
    providers = {p["name"]: p for p in body["providers"]}
    assert providers["a"]["health"] == "cut_off"
    assert "unsupported_country" in providers["a"]["cut_off"]["reason"]
    assert providers["b"]["health"] == "ok"
    [r] = body["routes"]
    assert r["serving"]["target"] == "b/m" and r["ready"] == ["b/m"]  # a is skipped while cut off
    [outage] = body["timeline"]
    assert (outage["route"], outage["provider"], outage["to"], outage["ongoing"]) == ("r", "a", "b/m", True)
    assert "unsupported_country" in outage["reason"]
    assert body["failovers"] == [{"from": "a", "to": "b", "count": 1}]
    assert body["local"] == [{"id": "fake-model", "loaded": False}]


async def test_a_local_model_by_its_own_name_names_itself_as_the_target(tmp_path: Path) -> None:
    async with in_process(tmp_path) as lb:
        chat = {**CHAT, "model": "fake-model", "stream": True}
        async with lb.client.stream("POST", "/v1/chat/completions", json=chat) as answer:
            assert answer.headers["x-lumbung-target"] == "local/fake-model"
            await answer.aread()


async def read_events(response: httpx.Response, count: int) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    name = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
            if len(events) == count:
                break
    return events


async def test_the_event_stream_sends_each_topic_at_once(tmp_path: Path) -> None:
    async with cut_off_rig(tmp_path) as lb:
        await lb.client.post("/v1/chat/completions", json=CHAT)
        async with lb.client.stream("GET", "/ui/api/events?topics=overview,models") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = dict(await read_events(stream, 2))
        assert events["overview"]["timeline"][0]["provider"] == "a"
        assert [m["id"] for m in events["models"]["local"]] == ["fake-model"]
        assert events["models"]["store"] == []
        assert (await lb.client.get("/ui/api/session")).json() == {"operator": True, "keys": False}  # open
        wrong = await lb.client.get("/ui/api/events?topics=overview,nope")
        assert wrong.status_code == 400 and "nope" in wrong.json()["error"]["message"]


async def test_pages_and_assets_need_no_key_and_data_needs_an_operator_key(tmp_path: Path) -> None:
    async with cut_off_rig(tmp_path, api_keys=[API], admin_api_keys=[OPERATOR]) as lb:
        page = await lb.client.get("/ui/overview")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert 'id="login"' in page.text and "cut_off" not in page.text  # a shell: no data in it
        assert (await lb.client.get("/ui", follow_redirects=False)).headers["location"] == "/ui/overview"
        assert (await lb.client.get("/ui/nope")).status_code == 404
        script = page.text.split('<script src="')[1].split('"')[0]
        raw = await lb.client.get(script, headers={"Accept-Encoding": "gzip"})
        assert raw.headers["content-encoding"] == "gzip" and "immutable" in raw.headers["cache-control"]
        assert b"sessionStorage" in raw.content  # httpx decodes; the bytes on the wire were fewer
        assert int(raw.headers["content-length"]) < len(raw.content) / 2
        assert (await lb.client.get("/ui/assets/nope.js")).status_code == 404
        for path in ("/ui/api/session", "/ui/api/overview", "/ui/api/models", "/ui/api/events"):
            assert (await lb.client.get(path)).status_code == 401, path
            refused = await lb.client.get(path, headers={"Authorization": f"Bearer {API}"})
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_key_required"
        who = await lb.client.get("/ui/api/session", headers={"Authorization": f"Bearer {OPERATOR}"})
        assert who.json() == {"operator": True, "keys": True}


async def test_verify_rehashes_a_stored_model_and_names_a_damaged_file(tmp_path: Path) -> None:
    gguf = write_gguf(tmp_path / "tiny.gguf")
    store = ModelStore(tmp_path)
    manifest = add_file(store, parse_reference(f"file:{gguf}"))
    async with in_process(tmp_path) as lb:
        listed = (await lb.client.get("/ui/api/models")).json()["store"]
        assert [m["name"] for m in listed] == [manifest.name]
        assert listed[0]["verified_at"] == manifest.pulled_at and listed[0]["source"] == "file"
        good = (await lb.client.post("/ui/api/verify", json={"model": manifest.name})).json()
        assert good["ok"] and good["problems"] == [] and good["verified_at"] is not None
        assert store.find(manifest.name).verified_at == good["verified_at"]
        blob = store.blob_path(manifest.files[0].sha256)
        os.chmod(blob, 0o644)
        data = bytearray(blob.read_bytes())
        data[-1] ^= 0xFF
        blob.write_bytes(bytes(data))
        bad = (await lb.client.post("/ui/api/verify", json={"model": manifest.name})).json()
        assert not bad["ok"] and "expected" in bad["problems"][0]
        missing = await lb.client.post("/ui/api/verify", json={"model": "nope"})
        assert missing.status_code == 404 and missing.json()["error"]["param"] == "model"
        wrong = await lb.client.post("/ui/api/verify", json={"name": "x"})
        assert wrong.status_code == 400


async def test_usage_over_time_comes_from_the_ledger(tmp_path: Path) -> None:
    await usage_over_time(tmp_path)


async def test_usage_over_time_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    await usage_over_time(tmp_path, database_url=postgres_url)


async def usage_over_time(tmp_path: Path, **settings: Any) -> None:
    async with cut_off_rig(tmp_path, **settings) as lb:
        for _ in range(3):
            assert (await lb.client.post("/v1/chat/completions", json=CHAT)).status_code == 200
        by_route = (await lb.client.get("/ui/api/usage?by=route&since=1h")).json()
        by_provider = (await lb.client.get("/ui/api/usage?by=provider")).json()
        wrong = await lb.client.get("/ui/api/usage?by=colour")
        bad_since = await lb.client.get("/ui/api/usage?since=yesterday-ish")
    assert (
        by_route["groups"] == ["r"]
        and len(by_route["buckets"]) == by_route["series"]["requests"][0]["values"].__len__()
    )
    [requests] = by_route["series"]["requests"]
    assert sum(requests["values"]) == 3 and requests["values"][-1] == 3  # all in the latest bucket
    [tokens] = by_route["series"]["tokens"]
    assert sum(tokens["values"]) > 0
    assert by_provider["groups"] == ["b"]  # the provider that answered
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "by"
    assert bad_since.status_code == 400 and bad_since.json()["error"]["param"] == "since"


async def test_usage_says_so_when_the_ledger_is_off(tmp_path: Path) -> None:
    async with in_process(tmp_path, usage_ledger=False) as lb:
        off = await lb.client.get("/ui/api/usage")
    assert off.status_code == 404 and "ledger" in off.json()["error"]["message"]


async def test_reports_are_listed_newest_first_and_opened_by_name_only(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    old = Report("replay of app on m", "app.jsonl", "m", "recorded", 1.0, []).write_json(folder / "old.json")
    os.utime(old, (1, 1))
    Report("shadow report of r", "shadow-r.jsonl", "m", "shadow-live", 2.0, []).write_json(
        folder / "new.json"
    )
    (folder / "new.html").write_text("<html><script>alert(1)</script></html>")
    (folder / "broken.json").write_text("{")
    os.utime(folder / "broken.json", (0, 0))
    async with in_process(tmp_path) as lb:
        listed = (await lb.client.get("/ui/api/reports")).json()
        one = await lb.client.get("/ui/api/reports/old")
        page = await lb.client.get("/ui/api/reports/new.html")
        escapes = [await lb.client.get(f"/ui/api/reports/{n}") for n in ("..%2Fsecret", ".hidden", "nope")]
    assert [r["name"] for r in listed["reports"]] == ["new", "old", "broken"]
    new, older, broken = listed["reports"]
    assert (new["kind"], new["html"], new["passed"], older["kind"], older["html"]) == (
        "shadow",
        True,
        True,
        "replay",
        False,
    )
    assert broken["error"].startswith("unreadable")
    assert one.json()["title"] == "replay of app on m"
    assert page.headers["content-disposition"].startswith("attachment")  # never shown under /ui's origin
    assert [r.status_code for r in escapes] == [404, 400, 404]


def test_the_whole_ui_stays_small_on_the_wire() -> None:
    """What a slow link carries for every page together, once (then cached by hash): under 32 KiB."""
    assert sum(len(a.gzipped) for a in assets().values()) < 32 * 1024


async def test_the_pass_through_path_names_its_target_and_feeds_the_timeline(tmp_path: Path) -> None:
    """Bytes forwarded to OpenAI-compatible upstreams (surfaces/openai_passthrough.py) take the same
    attempt loop: the header and the timeline are the same as on the typed path."""
    a, b = FakeUpstream("a", words=3), FakeUpstream("b", words=3)
    servers = [await a.serve(), await b.serve()]
    a.set("403_region")
    try:
        routes = [route("r", ["a"], ["b"])]
        async with in_process(tmp_path, providers={"a": a.base_url, "b": b.base_url}, routes=routes) as lb:
            assert lb.gateway.forwards("r") == "r"  # the pass-through path, not the typed one
            whole = await lb.client.post("/v1/chat/completions", json=CHAT)
            async with lb.client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as s:
                streamed = s.headers.get("x-lumbung-target")
                await s.aread()
            body = (await lb.client.get("/ui/api/overview")).json()
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()
    assert whole.headers["x-lumbung-target"] == streamed == "b/m"
    [outage] = body["timeline"]
    assert (outage["provider"], outage["to"], outage["moved"]) == ("a", "b/m", 1)  # then a was skipped
