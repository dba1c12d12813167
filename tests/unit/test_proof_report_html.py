"""The HTML report in a real browser (Debian's Chromium driven by Playwright): it opens from a file
with no network, and its plots render (SVG charts with bars of non-zero size)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lumbung.proof.report import Report, metric_names
from lumbung.proof.thresholds import parse
from tests.support.recorded_traffic import RecordedCloud, completion, traffic
from tests.unit.test_proof_replay import run

WRONG = {
    "Weather in Paris?": completion(calls=[("get_weather", '{"city": "Paris", "unit": "kelvin"}')]),
    "Ada, 36": completion('{"name": "Ada", "age": '),
    "Capital of France?": completion("Paris is the capital city of France, <b>of course</b>."),
}


def report(tmp_path: Path) -> Report:
    gate = parse({"tool_call_validity": ">= 0.98", "answered": "= 1"}, metric_names())
    # on a thread of its own: Playwright's sync API holds an event loop on this one
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(
            asyncio.run, run(tmp_path, RecordedCloud(traffic(), WRONG), thresholds=gate)
        ).result()


def test_the_report_page_renders_its_plots_in_a_browser(tmp_path: Path, chromium: Any) -> None:
    html, data = report(tmp_path).write(tmp_path / "report.html")
    assert data.exists() and html.stat().st_size > 0
    text = html.read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text  # self-contained
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(html.as_uri())
        assert requests == [html.as_uri()]  # nothing fetched beside the page itself
        assert page.locator("h1 .verdict").inner_text() == "FAIL"
        charts = page.locator("svg.chart")
        assert charts.count() == 5  # checks, groups, latency, TTFT, similarity
        for i in range(charts.count()):
            box = charts.nth(i).bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 50
            bar = charts.nth(i).locator("rect.bar").first.bounding_box()
            assert bar is not None and bar["width"] > 0 and bar["height"] > 0
        # the worst cases side by side, the model's text escaped, not markup
        assert page.locator(".case").count() == 3
        assert any("<b>of course</b>" in t for t in page.locator(".case pre").all_inner_texts())
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        assert (tmp_path / "report.png").stat().st_size > 10_000
    finally:
        page.close()
