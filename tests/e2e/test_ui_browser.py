"""The dashboard in a real browser: Debian's Chromium driven by Playwright against a live `lumbung serve`
with the real embedded model, two fake upstream providers behind one route, and a fake hub to pull from.

Each test logs in with the operator key (the key lives in the tab's sessionStorage, so every new page
logs in again) and checks what the page shows against what the server did. Screenshots of each page go
to ``$LUMBUNG_SCREENSHOTS`` when set (docs/screenshots/ holds the ones docs/ui.md links to).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from playwright.sync_api import expect

from tests.support.fake_hub import FakeFile, FakeHub
from tests.support.fake_upstream import FakeUpstream
from tests.support.gguf_files import write_gguf
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e
OPERATOR, API = "ui-operator-key", "ui-api-key"
TIMEOUTS = {"connect": 1.0, "first_token": 2.0, "idle": 2.0, "total": 20.0}
WAIT = 20_000  # ms a page may take to show what the server did (live updates, a model's answer)


class Rig:
    def __init__(
        self, server: ServerProcess, primary: FakeUpstream, backup: FakeUpstream, hub: FakeHub
    ) -> None:
        self.server, self.primary, self.backup, self.hub = server, primary, backup, hub

    @property
    def url(self) -> str:
        return self.server.base_url

    def loaded_model(self) -> str:
        """The default local model, loaded at start-up."""
        return next(m["id"] for m in self.operator_get("/ui/api/overview")["local"] if m["loaded"])

    def operator_get(self, path: str) -> Any:
        answer = httpx.get(self.url + path, headers={"Authorization": f"Bearer {OPERATOR}"}, timeout=30)
        answer.raise_for_status()
        return answer.json()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    home = tmp_path_factory.mktemp("ui-home")
    primary = FakeUpstream(name="primary").start()
    backup = FakeUpstream(name="backup").start()
    tiny = write_gguf(tmp_path_factory.mktemp("hub") / "tiny.gguf", tensors=2, shape=(1024, 1024))
    hub = FakeHub().start()
    hub.commit("acme/tiny-GGUF", [FakeFile("tiny-F32.gguf", source=tiny)], license="mit")
    hub.faults.delay = 0.3  # a slow link: the pull takes seconds, its progress shows
    config = {
        "api_keys": [API],
        "admin_api_keys": [OPERATOR],
        "providers": [
            {"name": n, "kind": "openai", "base_url": u.base_url, "jurisdiction": "US", "timeouts": TIMEOUTS}
            for n, u in (("primary", primary), ("backup", backup))
        ],
        "routes": [{"name": "chat", "tiers": [["primary/m1"], ["backup/m1"]], "record": True}],
        # Spend and savings to chart: the backup bills per token, the route's old API billed more.
        "prices": {
            "targets": {"backup/*": {"input": 1000.0, "output": 2000.0}},
            "routes": {"chat": {"input": 5000.0, "output": 10000.0}},
        },
    }
    env = {"MODELSCOPE_ENDPOINT": hub.url}
    server = ServerProcess(home, config=config, env=env).start()
    yield Rig(server, primary, backup, hub)
    server.stop()
    primary.stop()
    backup.stop()
    hub.stop()


def shot(page: Any, name: str) -> None:
    folder = os.environ.get("LUMBUNG_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))  # the viewport: small files


def open_page(chromium: Any, rig: Rig, name: str) -> Any:
    """A new tab on /ui/NAME, logged in with the operator key by keyboard."""
    page = chromium.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{rig.url}/ui/{name}")
    page.get_by_label("Operator key").fill(OPERATOR)
    page.keyboard.press("Enter")
    page.locator("#page").wait_for(state="visible", timeout=WAIT)
    return page


def test_login_takes_an_operator_key_and_refuses_an_api_key(chromium: Any, rig: Rig) -> None:
    page = chromium.new_page()
    page.goto(f"{rig.url}/ui")  # redirected to the overview
    key = page.get_by_label("Operator key")
    assert key.is_visible() and page.locator("#page").is_hidden()
    key.fill(API)
    page.keyboard.press("Enter")
    alert = page.get_by_role("alert").first
    alert.wait_for(timeout=WAIT)
    assert "operator key" in alert.inner_text()
    assert page.evaluate("sessionStorage.length") == 0  # a refused key is not kept
    key.fill("not-a-key")
    page.keyboard.press("Enter")
    expect(page.locator("#login-error")).to_contain_text("Incorrect")
    key.fill(OPERATOR)
    page.keyboard.press("Enter")
    page.locator("#providers tbody tr[data-provider=primary]").wait_for(timeout=WAIT)
    assert page.evaluate("Object.keys(localStorage).length") == 0  # kept for the tab only
    page.get_by_role("button", name="Log out").click()
    key.wait_for(state="visible")
    assert page.evaluate("sessionStorage.length") == 0
    page.close()


def test_a_region_blocked_provider_shows_cut_off_live_and_the_failover_is_on_the_timeline(
    chromium: Any, rig: Rig
) -> None:
    page = open_page(chromium, rig, "overview")
    primary = page.locator("#providers tr[data-provider=primary]")
    primary.locator("td.health").wait_for(timeout=WAIT)
    assert primary.locator("td.health").inner_text() == "ok"
    assert "primary/m1" in page.locator("#routes tr[data-route=chat]").inner_text()
    page.get_by_text("Live", exact=True).wait_for(timeout=WAIT)
    shot(page, "overview")

    rig.primary.set("403_region")
    with openai.OpenAI(base_url=rig.url + "/v1", api_key=API, max_retries=0) as client:
        done = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert done.choices[0].message.content  # the backup answered

    # No reload: the page learns it from the event stream.
    cut = primary.locator("td.cutoff")
    expect(primary.locator("td.health")).to_have_text("cut off", timeout=WAIT)
    assert "region" in cut.inner_text().lower()
    outage = page.locator("#timeline tr[data-provider=primary]")
    outage.wait_for(timeout=WAIT)
    assert "backup/m1" in outage.locator("td.to").inner_text()
    assert "so far" in outage.inner_text()  # the outage is still on
    route = page.locator("#routes tr[data-route=chat]")
    assert "backup/m1" in route.locator("td.serving").inner_text()
    assert route.locator("td.next").inner_text() == "backup/m1"
    shot(page, "overview-failover")
    page.close()


def test_the_playground_streams_tokens_from_the_local_model(chromium: Any, rig: Rig) -> None:
    local = rig.loaded_model()
    page = open_page(chromium, rig, "playground")
    page.get_by_label("Model or route").select_option(local)
    page.get_by_label("System prompt").fill("You answer in one short sentence.")
    page.get_by_label("Temperature").fill("0")
    page.get_by_label("Message").fill("Name a colour.")
    page.get_by_label("Message").press("Control+Enter")
    expect(page.locator("#stat-finish")).to_have_text(re.compile("^(stop|length)$"), timeout=60_000)
    answer = page.locator(".msg.assistant .text").last
    assert answer.inner_text().strip()
    assert int(answer.get_attribute("data-chunks") or 0) > 1  # it came in pieces, as they were made
    assert page.locator("#stat-target").inner_text() == f"local/{local}"
    assert page.locator("#stat-ttft").inner_text().endswith(" s")
    assert float(page.locator("#stat-tps").inner_text()) > 0
    prompt, cached, completion = page.locator("#stat-tokens").inner_text().split(" / ")
    assert int(prompt) > 0 and int(cached) >= 0 and int(completion) > 1
    assert page.locator("#stat-id").inner_text().startswith("req")
    shot(page, "playground")
    page.close()


def test_a_pull_shows_progress_and_ends_verified_then_verify_and_remove(chromium: Any, rig: Rig) -> None:
    page = open_page(chromium, rig, "models")
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("#loaded tbody tr[data-model]").first.wait_for(timeout=WAIT)
    loaded = page.locator("#loaded tbody tr").filter(has_text="loaded").first
    assert re.search(r"\d iB|\d (K|M|G)iB", loaded.inner_text())  # the default model's memory

    page.get_by_label("Model reference").fill("ms:acme/tiny-GGUF:tiny-F32.gguf")
    page.get_by_role("button", name="Pull").click()
    status = page.locator("#pull-status")
    expect(status).to_contain_text("verified", timeout=60_000)
    assert int(page.locator("#pull-progress").get_attribute("data-partial") or 0) > 1  # it moved
    assert "sha256" in status.inner_text()
    row = page.locator("#store tr[data-model]").filter(has_text="acme/tiny-GGUF")
    row.wait_for(timeout=WAIT)
    text = row.inner_text()
    assert "mit" in text and "ms: acme/tiny-GGUF" in text
    shot(page, "models")

    name = row.get_attribute("data-model")
    page.get_by_role("button", name=f"Verify {name}").click()
    expect(page.locator("#store-status")).to_contain_text("every file matches", timeout=WAIT)
    page.get_by_role("button", name=f"Remove {name}").click()
    row.wait_for(state="detached", timeout=WAIT)
    assert name not in [m["name"] for m in rig.operator_get("/ui/api/models")["store"]]
    page.close()


def test_usage_shows_the_ledger_by_route_with_charts(chromium: Any, rig: Rig) -> None:
    with openai.OpenAI(base_url=rig.url + "/v1", api_key=API, max_retries=0) as client:
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    page = open_page(chromium, rig, "usage")
    page.get_by_label("Group by").select_option("route")
    page.get_by_role("button", name="Show").click()
    row = page.locator("#usage-table tr[data-group=chat]")
    row.wait_for(timeout=WAIT)
    served = rig.operator_get("/admin/usage?by=route&since=24h")
    [chat] = [g for g in served["groups"] if g["group"] == "chat"]
    assert row.locator("td").first.inner_text() == str(chat["requests"])
    bars = page.locator("svg[data-series=requests] rect")
    assert bars.count() >= 1
    assert page.locator("svg[data-series=spend] rect").count() >= 1  # the backup's bill
    assert page.locator("svg[data-series=savings] rect").count() >= 1  # less than the old API's
    assert chat["spend"] > 0 and chat["savings"] > 0
    shot(page, "usage")
    page.close()


def test_a_replay_report_is_listed_and_opened(chromium: Any, rig: Rig) -> None:
    """`lumbung replay` of the route's own recording against the local model writes the report the
    page lists and opens."""
    with openai.OpenAI(base_url=rig.url + "/v1", api_key=API, max_retries=0) as client:
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "Say hi."}])
    recording = rig.server.home / "recordings" / "chat.jsonl"
    deadline = time.monotonic() + 30  # written off the request's path, by the recorder's thread
    while not (recording.is_file() and recording.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.1)
    local = rig.loaded_model()
    replay = [sys.executable, "-m", "lumbung", "replay", "chat", "--against", local, "--url", rig.url]
    replay += ["--api-key", OPERATOR, "--embedding-model", "none", "--limit", "1", "--seed", "1"]
    done = subprocess.run(replay, env=rig.server.env, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr  # 1: a threshold failed; the report is written either way
    page = open_page(chromium, rig, "reports")
    row = page.locator("#reports tr[data-report]").filter(has_text=f"on {local}").first
    row.wait_for(timeout=WAIT)
    assert "replay" in row.inner_text() and "recorded" in row.inner_text()
    name = row.get_attribute("data-report")
    page.get_by_role("button", name=f"Open {name}").click()
    expect(page.locator("#report-h")).to_have_text(f"replay of chat on {local}", timeout=WAIT)
    assert page.locator("#report-checks tr[data-check]").count() >= 1
    assert page.locator("#report-metrics tbody tr").count() >= 1
    shot(page, "reports")
    page.close()


UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea, button")]
    .filter((c) => c.offsetParent !== null || c.closest("#page"))
    .filter((c) => !(c.labels && c.labels.length) && !c.getAttribute("aria-label") && !c.textContent.trim())
    .map((c) => c.outerHTML)"""


@pytest.mark.parametrize("name", ["overview", "models", "playground", "usage", "keys", "reports"])
def test_every_control_has_a_label_and_the_page_works_by_keyboard(chromium: Any, rig: Rig, name: str) -> None:
    page = chromium.new_page()
    page.goto(f"{rig.url}/ui/{name}")
    page.locator("#login-key:focus").wait_for(timeout=WAIT)  # the key field takes the focus
    page.keyboard.type(OPERATOR)
    page.keyboard.press("Enter")
    page.locator("#page").wait_for(state="visible", timeout=WAIT)
    page.reload()  # still logged in: the tab keeps the key for its session
    page.locator("#page").wait_for(state="visible", timeout=WAIT)
    page.keyboard.press("Tab")  # from the top: the skip link, then the pages
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == "/ui/overview"
    assert page.evaluate(UNLABELLED) == []
    page.close()


def test_a_key_made_in_the_ui_works_with_the_sdk_until_it_is_revoked(chromium: Any, rig: Rig) -> None:
    page = open_page(chromium, rig, "keys")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_label("Name").fill("ui-made")
    page.get_by_label("Routes (comma-separated; empty: all)").fill("chat")
    page.get_by_label("Requests per minute").fill("60")
    page.get_by_role("button", name="Create key").click()
    secret_box = page.locator("#key-secret-value")
    expect(secret_box).not_to_be_empty(timeout=WAIT)
    secret = secret_box.inner_text()
    row = page.locator("#keys tr[data-key=ui-made]")
    row.wait_for(timeout=WAIT)
    assert "routes: chat" in row.inner_text() and "60 req/min" in row.inner_text()
    assert row.locator("td.state").inner_text() == "active"
    shot(page, "keys")
    page.reload()  # the secret is shown once: not after a reload
    row.wait_for(timeout=WAIT)
    assert secret not in page.content()

    rig.primary.set("ok")
    with openai.OpenAI(base_url=rig.url + "/v1", api_key=secret, max_retries=0) as client:
        done = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
        assert done.choices[0].message.content
        page.get_by_role("button", name="Revoke ui-made").click()
        expect(row.locator("td.state")).to_have_text("revoked", timeout=WAIT)
        deadline = time.monotonic() + 10  # the server's view of the key store refreshes within a second
        refused = None
        while refused is None and time.monotonic() < deadline:
            try:
                client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
                time.sleep(0.2)
            except openai.AuthenticationError as exc:
                refused = exc
        assert refused is not None and refused.status_code == 401
    page.close()
    usage = open_page(chromium, rig, "usage")  # by key: the key's requests under its name
    mine = usage.locator("#usage-table tbody th").filter(has_text="ui-made")
    mine.wait_for(timeout=WAIT)
    assert mine.count() == 1
    usage.close()
