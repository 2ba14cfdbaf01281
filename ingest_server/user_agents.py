"""What a browser's User-Agent says: whether it is a bot, and its browser, OS and device class.

Two maintained sources: ua-parser (uap-core's rules, with its native resolver) names the
browser and OS and flags crawlers as the "Spider" device; the crawler-user-agents list (the
one many analytics and CDN tools share) adds the headless browsers (HeadlessChrome,
PhantomJS), HTTP libraries and scrapers that uap-core reads as ordinary browsers or as nothing.
Both cost tens to hundreds of microseconds a string, so results are cached by the string: the
browsers of real traffic are a few thousand strings at most.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import crawleruseragents
import ua_parser

# Distinct user agents remembered; past it the least recently seen are parsed again.
CACHE_SIZE = 10_000
# ua-parser's OS families of desktop computers.
_DESKTOP_OS = frozenset(
    {"Windows", "Mac OS X", "Linux", "Ubuntu", "Fedora", "Debian", "Chrome OS", "FreeBSD",
     "OpenBSD", "NetBSD", "Solaris"}
)  # fmt: skip
_TABLET_DEVICES = ("iPad", "Kindle", "Tablet", "Tab")


@dataclass(frozen=True, slots=True)
class UserAgent:
    bot: bool
    browser: str  # ua-parser's family ("Chrome", "Mobile Safari"), "" when unknown
    os: str  # likewise ("Windows", "iOS")
    device: str  # "desktop", "mobile", "tablet"; "" when unknown


@lru_cache(maxsize=CACHE_SIZE)
def user_agent(text: str) -> UserAgent:
    parsed = ua_parser.parse(text)
    browser = parsed.user_agent.family if parsed.user_agent else ""
    os = parsed.os.family if parsed.os else ""
    device = parsed.device.family if parsed.device else ""
    bot = device == "Spider" or crawleruseragents.is_crawler(text)
    browser = "" if browser == "Other" else browser
    return UserAgent(bot, browser, os, _device_class(text, os, device))


def _device_class(text: str, os: str, device: str) -> str:
    tablet = any(name in device for name in _TABLET_DEVICES)
    if tablet or (os == "Android" and "Mobile" not in text):
        return "tablet"
    if os in ("iOS", "Android") or "Mobi" in text:
        return "mobile"
    if os in _DESKTOP_OS:
        return "desktop"
    return ""
