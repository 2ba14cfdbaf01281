"""The tracker in a real browser: Debian's Chromium, driven by Playwright, on a test site served
from another origin than the analytics server, as a visitor would use it.

Two host names stand for the two origins (`www.shop.test` for the site, `analytics.test` for
the ingest server), both mapped to 127.0.0.1 by Chromium's --host-resolver-rules, so the page
is no localhost page, which the tracker ignores. The tracker also ignores automated browsers
(`navigator.webdriver`, which Playwright sets): the tests that expect events hide it with an
init script, as a browser not driven by a program would look; one test keeps it, and sees
nothing sent. Screenshots at desktop and phone width go to test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from runtime.serve import ApiServer
from tests.support.browser import artifacts_folder, chromium_browser
from tests.support.waiting import eventually
from writer.service import RunningWriter

DESKTOP_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
PHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
HEADLESS_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/131.0.0.0 Safari/537.36"
)
HIDE_AUTOMATION = "Object.defineProperty(Navigator.prototype, 'webdriver', {get: () => false})"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Shop</title>
<style>
  body {{ font: 16px/1.5 system-ui, sans-serif; margin: 0; color: #1a1a1a; }}
  header {{ background: #0b3d91; color: #fff; padding: 1rem; }}
  nav a {{ color: #fff; margin-right: 1rem; }}
  main {{ padding: 1rem; max-width: 40rem; }}
  button {{ font-size: 1rem; padding: .6rem 1.2rem; background: #0b3d91; color: #fff;
           border: 0; border-radius: 4px; }}
</style>
<script defer data-site="shop" src="{tracker}"></script>
</head><body>
<header><strong>Shop</strong>
  <nav><a href="/" id="home">Home</a><a href="/pricing" id="pricing">Pricing</a></nav></header>
<main><h1 id="title">Welcome</h1>
  <p>A test site whose page views, custom events and tagged clicks the tracker sends.</p>
  <button id="cta" data-analytics-event="cta_click" data-analytics-prop-position="hero">
    Start free trial</button>
</main>
<script>
  // A single-page application's router: links change the history, not the page.
  document.querySelector('nav').addEventListener('click', (e) => {{
    if (e.target.tagName != 'A') return;
    e.preventDefault();
    history.pushState({{}}, '', e.target.getAttribute('href'));
    document.getElementById('title').textContent = e.target.textContent;
  }});
</script>
</body></html>
"""


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    async with chromium_browser() as browser:
        yield browser


@pytest.fixture
def artifacts() -> Path:
    return artifacts_folder()


@pytest.fixture
async def site(api: ApiServer) -> AsyncIterator[str]:
    """The test site's address: its one page, whatever the path (a single-page app), loading
    the tracker from the analytics server's other origin."""
    tracker = f"http://analytics.test:{api.http.port}/tracker.js"
    page = PAGE.format(tracker=tracker).encode()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n"
        writer.write(head + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(page) + page)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield f"http://www.shop.test:{server.sockets[0].getsockname()[1]}"


async def events(db: asyncpg.Connection, *more: str) -> list[tuple[Any, ...]]:
    """(event_type, path, properties, *more columns) of the stored events, in order sent."""
    columns = ", ".join(("event_type", "path", "properties", *more))
    rows = await db.fetch(f"SELECT {columns} FROM events ORDER BY received_at, occurred_at")
    return [(row[0], row[1], json.loads(row[2]), *row[3:]) for row in rows]


async def test_views_navigation_custom_events_and_tagged_clicks_arrive_exactly(
    chromium: Any, site: str, writer: RunningWriter, db: asyncpg.Connection, artifacts: Path
) -> None:
    context = await chromium.new_context(
        user_agent=DESKTOP_CHROME, viewport={"width": 1280, "height": 800}
    )
    await context.add_init_script(HIDE_AUTOMATION)
    page = await context.new_page()

    await page.goto(site + "/?utm_source=newsletter&ref=x")
    await eventually(lambda: events(db), [("page_view", "/", _props(utm_source="newsletter"))])
    await page.click("#pricing")
    # The same path again (another query string) is no new view.
    await page.evaluate("history.replaceState({}, '', '/pricing?tab=yearly')")
    await page.go_back()
    await page.evaluate("analytics.track('signup', {plan: 'pro'})")
    await page.click("#cta")
    await page.screenshot(path=artifacts / "tracker-site-desktop.png")

    # Each carries the utm_ fields of the query string it was sent under: the first view's.
    first = _props(utm_source="newsletter")
    await eventually(
        lambda: events(db),
        [
            ("page_view", "/", first),
            ("page_view", "/pricing", _props()),
            ("page_view", "/", first),
            ("signup", "/", _props(plan="pro", utm_source="newsletter")),
            ("cta_click", "/", _props(position="hero", utm_source="newsletter")),
        ],
    )
    await context.close()


async def test_a_phone_is_counted_as_a_mobile_device_with_a_mobile_screen(
    chromium: Any, site: str, writer: RunningWriter, db: asyncpg.Connection, artifacts: Path
) -> None:
    context = await chromium.new_context(
        user_agent=PHONE_SAFARI, viewport={"width": 390, "height": 844}, is_mobile=True
    )
    await context.add_init_script(HIDE_AUTOMATION)
    page = await context.new_page()

    await page.goto(site + "/pricing")
    await page.screenshot(path=artifacts / "tracker-site-phone.png")

    await eventually(
        lambda: events(db, "browser", "device"),
        [("page_view", "/pricing", {"screen": "mobile"}, "Mobile Safari", "mobile")],
    )
    await context.close()


async def test_a_headless_browser_is_dropped_as_a_bot_and_counted(
    chromium: Any, site: str, http: httpx.AsyncClient, writer: RunningWriter, db: asyncpg.Connection
) -> None:
    context = await chromium.new_context(user_agent=HEADLESS_CHROME)
    await context.add_init_script(HIDE_AUTOMATION)
    page = await context.new_page()

    async with page.expect_response(lambda r: r.url.endswith("/event")) as answer:
        await page.goto(site + "/")
    response = await answer.value

    assert response.status == 202
    assert await response.header_value("x-analytics-dropped") == "bot"
    today = datetime.now(UTC).date().isoformat()
    query = {"site_id": "shop", "start_date": today, "end_date": today}

    async def filtered() -> Any:
        return (await http.get("/filtered-traffic", params=query)).json()["days"]

    await eventually(filtered, [{"day": today, "reason": "bot", "count": 1}])
    assert await events(db) == []
    await context.close()


@pytest.mark.parametrize(
    ("why", "automated", "host"),
    [("automated", True, "www.shop.test"), ("localhost", False, "127.0.0.1")],
)
async def test_the_tracker_sends_nothing_from_an_automated_browser_or_a_local_page(
    chromium: Any, site: str, why: str, automated: bool, host: str
) -> None:
    context = await chromium.new_context(user_agent=DESKTOP_CHROME)
    if not automated:
        await context.add_init_script(HIDE_AUTOMATION)
    page = await context.new_page()
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url))

    await page.goto(site.replace("www.shop.test", host) + "/")
    await page.evaluate("analytics.track('signup')")
    # Anything the tracker sent was asked for before this request, which marks the end.
    async with page.expect_request(lambda r: r.url.endswith("/end")):
        await page.evaluate("fetch('/end')")

    assert [url for url in sent if url.endswith("/event")] == [], why
    await context.close()


def _props(**given: str) -> dict[str, str]:
    """The properties the tracker sends at desktop width, with `given`."""
    return {**given, "screen": "laptop"}
