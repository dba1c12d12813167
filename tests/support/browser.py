"""A real browser for the web pages' tests: Debian's Chromium driven by Playwright (its own browser
downloads cannot run here; ``executable_path`` points it at the Debian one)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.debian import ensure


@pytest.fixture
def chromium() -> Iterator[Any]:
    """A headless Chromium browser for one test. Not shared by the session: Playwright's sync API
    keeps its event loop set as this thread's running loop while it is open, and every asyncio test
    after it would fail with "Cannot run the event loop while another loop is running"."""
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = ensure("chromium", "chromium")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            browser.close()
