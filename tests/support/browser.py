"""A real browser for the tests that need one: Debian's Chromium, driven by Playwright for
Python with `executable_path` (Playwright's own browser download is not reachable here).
Without a `chromium` on PATH those tests are skipped, saying how to install it; `.ci/run`
installs it. Screenshots go to test-artifacts/ at the top of the checkout (git-ignored)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"
# What headless Chromium needs on this kind of machine (no sandbox as root, no network beyond
# the loopback), and the tests' host names (`*.test`) mapped to the loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP *.test 127.0.0.1",
]


@asynccontextmanager
async def chromium_browser() -> AsyncIterator[Any]:
    """A launched Chromium (a Playwright Browser); skips the test when there is none."""
    playwright_api = pytest.importorskip(
        "playwright.async_api", reason="playwright is not installed"
    )
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: install Debian's (apt-get install chromium)")
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


def artifacts_folder() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
