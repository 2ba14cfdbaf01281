"""The dashboard in a real browser (Debian's Chromium, see tests/support/browser.py): known
events sent through the HTTP API, the dashboard opened at `/`, and the numbers it shows in its
tiles, chart and tables compared with what those events make; then a click on a row, which
filters the whole dashboard, and an event arriving live.

Screenshots go to test-artifacts/ (git-ignored): dashboard-desktop.png (1280 wide),
dashboard-filtered-desktop.png and dashboard-phone.png (390 wide), whole pages.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from runtime.serve import ApiServer
from tests.support.browser import artifacts_folder, chromium_browser
from tests.support.waiting import eventually
from writer.service import RunningWriter

TODAY = datetime.now(UTC).date()
# The week the dashboard shows (`range=7d`: today and the six days before), and a day of the
# week before it, which the tiles compare with.
FIRST, SECOND, BEFORE = TODAY - timedelta(days=2), TODAY - timedelta(days=1), TODAY - timedelta(8)
TILES = "[...document.querySelectorAll('.tile')].map(t => [t.dataset.metric, \
t.querySelector('.value').textContent, t.querySelector('.change').textContent])"
ROWS = "(id) => [...document.querySelectorAll(`#${id} tbody tr`)].map(tr => \
[...tr.cells].map(c => c.textContent))"
CHART = "() => window.dashboard.chart.data.slice(1)"


def _event(user: str, kind: str, path: str, day: date, clock: str, **extra: Any) -> dict[str, Any]:
    return {
        "site_id": "shop",
        "event_type": kind,
        "path": path,
        "user_id": user,
        "timestamp": f"{day.isoformat()}T{clock}:00Z",
        **extra,
    }


EVENTS = [
    _event(
        "u1",
        "page_view",
        "/",
        FIRST,
        "10:00",
        referrer="https://news.ycombinator.com/item?id=1",
        properties={"screen": "laptop"},
    ),
    _event("u1", "page_view", "/pricing", FIRST, "10:05", properties={"screen": "laptop"}),
    _event(
        "u2",
        "page_view",
        "/",
        FIRST,
        "12:00",
        referrer="https://www.google.com/",
        properties={"screen": "mobile"},
    ),
    _event("u2", "signup", "/pricing", SECOND, "09:00", properties={"plan": "pro"}),
    _event("u3", "page_view", "/pricing", SECOND, "15:00", properties={"screen": "mobile"}),
    # The week before.
    _event("u1", "page_view", "/", BEFORE, "10:00"),
    _event("u4", "page_view", "/about", BEFORE, "11:00"),
]
# What the dashboard says it shows once it has drawn everything.
SHOWING = f"{TODAY - timedelta(days=6)} to {TODAY} (UTC)"


@pytest.fixture
async def chromium(api: ApiServer) -> AsyncIterator[Any]:
    """The browser, closed (with its open live streams) before the API server stops."""
    async with chromium_browser() as browser:
        yield browser


@pytest.fixture
async def shop(http: httpx.AsyncClient, writer: RunningWriter) -> str:
    """The site `shop` with EVENTS stored and one bot's event dropped today: the dashboard's
    address for its last 7 days."""
    created = await http.post("/sites", json={"site_id": "shop", "name": "Shop"})
    assert created.status_code == 201
    answer = await http.post("/events", json=EVENTS)
    assert answer.json()["accepted"] == len(EVENTS)
    # A page's request from a bot: dropped, and counted as filtered traffic.
    dropped = await http.post(
        "/event",
        json={"site_id": "shop", "event_type": "page_view", "path": "/"},
        headers={"origin": "http://www.shop.test", "user-agent": "curl/8.5.0"},
    )
    assert dropped.json() == {"status": "dropped", "reason": "bot"}

    async def stored() -> tuple[int, int]:
        metrics = (await http.get("/reports/metrics", params={"site_id": "shop"})).json()
        today = {"site_id": "shop", "start_date": str(TODAY), "end_date": str(TODAY)}
        filtered = (await http.get("/filtered-traffic", params=today)).json()
        return metrics["views"]["value"], filtered["total"]

    await eventually(stored, (len(EVENTS), 1))
    return str(http.base_url).rstrip("/") + "/?site=shop&range=7d"


async def test_the_dashboard_shows_the_exact_numbers_and_a_clicked_row_filters_it_all(
    shop: str, http: httpx.AsyncClient, chromium: Any
) -> None:
    artifacts = artifacts_folder()
    context = await chromium.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await page.goto(shop)
    await page.locator("#status", has_text=SHOWING).wait_for()

    assert await page.evaluate(TILES) == [
        ["visitors", "3", "▲ +50% vs 2"],
        ["views", "5", "▲ +150% vs 2"],
    ]
    # Days from six days ago to today: the two days of events, then today without any.
    assert await page.evaluate(CHART) == [[0, 0, 0, 0, 2, 2, 0], [0, 0, 0, 0, 3, 2, 0]]
    assert await page.evaluate(ROWS, "panel-pages") == [["/pricing", "3", "3"], ["/", "2", "2"]]
    assert await page.evaluate(ROWS, "panel-referrers") == [
        ["(none)", "3", "3"],
        ["google.com", "1", "1"],
        ["news.ycombinator.com", "1", "1"],
    ]
    assert await page.evaluate(ROWS, "panel-events") == [
        ["page_view", "3", "4"],
        ["signup", "1", "1"],
    ]
    assert await page.evaluate(ROWS, "panel-properties") == [
        ["mobile", "2", "2"],
        ["(none)", "1", "1"],  # the signup has no screen; ties go by value, "" first
        ["laptop", "1", "2"],
    ]
    assert await page.evaluate(ROWS, "filtered") == [[str(TODAY), "bot", "1"]]
    await page.screenshot(path=artifacts / "dashboard-desktop.png", full_page=True)

    await page.locator("#panel-pages").get_by_role("button", name="/pricing").click()
    await page.locator("#status", has_text=SHOWING).wait_for()

    chips = page.locator("#filters button")
    assert await chips.evaluate_all("cs => cs.map(c => c.ariaLabel)") == [
        "Remove filter: Page is /pricing"
    ]
    assert await page.evaluate(TILES) == [
        ["visitors", "3", "new (none before)"],
        ["views", "3", "new (none before)"],
    ]
    assert await page.evaluate(CHART) == [[0, 0, 0, 0, 1, 2, 0], [0, 0, 0, 0, 1, 2, 0]]
    assert await page.evaluate(ROWS, "panel-events") == [
        ["page_view", "2", "2"],
        ["signup", "1", "1"],
    ]
    await page.screenshot(path=artifacts / "dashboard-filtered-desktop.png", full_page=True)

    # The view is in the address: reloaded, it shows the same.
    await page.reload()
    await page.locator("#status", has_text=SHOWING).wait_for()
    assert await page.evaluate(ROWS, "panel-pages") == [["/pricing", "3", "3"]]
    await context.close()


async def test_the_live_panel_counts_the_visitor_of_an_event_sent_now(
    shop: str, http: httpx.AsyncClient, chromium: Any
) -> None:
    context = await chromium.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = await context.new_page()
    await page.goto(shop)
    await page.locator("#status", has_text=SHOWING).wait_for()
    await page.locator("#live-visitors", has_text="0").wait_for()

    sent = await http.post(
        "/event",
        json={"site_id": "shop", "event_type": "page_view", "path": "/now", "user_id": "u9"},
    )
    assert sent.status_code == 202

    await page.locator("#live-visitors", has_text="1").wait_for()
    assert await page.locator("#live-feed li .path").all_inner_texts() == ["/now"]
    await page.screenshot(path=artifacts_folder() / "dashboard-phone.png", full_page=True)
    await context.close()


async def test_a_report_answering_401_makes_it_ask_for_a_read_token_and_send_it(
    shop: str, http: httpx.AsyncClient, chromium: Any
) -> None:
    """The test stack serves reports openly (as `make run` does; tests/test_access.py checks a
    private server's answers), so a route in the browser refuses, as a private server would,
    every report request that does not carry the read token, which the server then checks."""
    made = await http.post("/admin/credentials", json={"kind": "read_token", "site_ids": ["shop"]})
    token = made.json()["secret"]
    context = await chromium.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    refused: list[str] = []

    async def check_token(route: Any) -> None:
        if route.request.headers.get("authorization") == f"Bearer {token}":
            await route.continue_()
            return
        refused.append(route.request.url.split("?")[0].rsplit("/", 1)[1])
        await route.fulfill(status=401, json={"error": "unauthenticated", "message": "no token"})

    await page.route(re.compile(r"/(reports/\w+|filtered-traffic)\?"), check_token)
    await page.goto(shop)
    await page.get_by_role("dialog", name="Read token").get_by_label("Token").fill(token)
    await page.keyboard.press("Enter")
    await page.locator("#status", has_text=SHOWING).wait_for()
    # The live stream too carries the token (read with fetch: EventSource cannot send it).
    await page.locator("#live-visitors", has_text="0").wait_for()

    # Refused before the token was given (the reports asked at once; how many is a race).
    assert refused
    assert set(refused) <= {"metrics", "timeseries", "breakdown", "filtered-traffic"}
    assert await page.evaluate(TILES) == [
        ["visitors", "3", "▲ +50% vs 2"],
        ["views", "5", "▲ +150% vs 2"],
    ]
    assert await page.evaluate("sessionStorage.getItem('analytics.read_token')") == token
    await context.close()
