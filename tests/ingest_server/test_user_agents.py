"""What a User-Agent says: bots and headless browsers, browser, OS and device class."""

from __future__ import annotations

import pytest

from ingest_server.user_agents import UserAgent, user_agent

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
SAFARI_IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1"
)
CHROME_ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
HEADLESS_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/131.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (CHROME_WINDOWS, UserAgent(False, "Chrome", "Windows", "desktop")),
        (SAFARI_IPHONE, UserAgent(False, "Mobile Safari", "iOS", "mobile")),
        (SAFARI_IPAD, UserAgent(False, "Mobile Safari", "iOS", "tablet")),
        (CHROME_ANDROID_TABLET, UserAgent(False, "Chrome", "Android", "tablet")),
    ],
)
def test_a_browser_is_named_with_its_os_and_device_class(text: str, expected: UserAgent) -> None:
    assert user_agent(text) == expected


@pytest.mark.parametrize(
    "text", [GOOGLEBOT, HEADLESS_CHROME, "curl/8.5.0", "python-requests/2.32.3", "Wget/1.21.4"]
)
def test_crawlers_headless_browsers_and_http_libraries_are_bots(text: str) -> None:
    assert user_agent(text).bot


def test_no_user_agent_is_no_bot_and_nothing_known() -> None:
    assert user_agent("") == UserAgent(False, "", "", "")
