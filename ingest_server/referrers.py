"""Where a visitor came from: the referrer's host, and its class: a search engine, a social
network, none ("direct"), or any other site.

The lists are short on purpose: the sites that send most of the web's search and social
traffic. A host matches a listed domain when it is that domain or under it
(`l.facebook.com` is facebook.com); a listed name without a dot matches any of its countries'
domains (`google` is google.com, google.co.uk, www.google.de).
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

SEARCH = frozenset(
    {"google", "bing.com", "duckduckgo.com", "search.yahoo.com", "yandex", "baidu.com",
     "ecosia.org", "startpage.com", "search.brave.com", "qwant.com", "kagi.com", "naver.com",
     "seznam.cz"}
)  # fmt: skip
SOCIAL = frozenset(
    {"facebook.com", "fb.com", "messenger.com", "instagram.com", "t.co", "twitter.com", "x.com",
     "linkedin.com", "lnkd.in", "reddit.com", "pinterest.com", "youtube.com", "tiktok.com",
     "threads.net", "bsky.app", "mastodon.social", "news.ycombinator.com", "vk.com",
     "weibo.com", "quora.com", "tumblr.com", "discord.com", "t.me", "whatsapp.com"}
)  # fmt: skip


# Referrers remembered: most of a site's come from a few search engines and networks.
CACHE_SIZE = 10_000


@lru_cache(maxsize=CACHE_SIZE)
def referrer_of(referrer: str, page_host: str) -> tuple[str, str]:
    """(host, class) of an event's referrer, the page being on `page_host`: a referrer of the
    page's own site, like none at all, is ("", "direct")."""
    if not referrer:
        return "", "direct"
    try:
        host = urlsplit(referrer).hostname or ""
    except ValueError:
        host = ""
    host = host.removeprefix("www.")
    if not host or host == page_host.removeprefix("www."):
        return "", "direct"
    if _listed(host, SEARCH):
        return host, "search"
    if _listed(host, SOCIAL):
        return host, "social"
    return host, "other"


def _listed(host: str, domains: frozenset[str]) -> bool:
    labels = host.split(".")
    # Every suffix of the host (news.ycombinator.com, ycombinator.com, com), then each label
    # for the names listed without a dot.
    return any(".".join(labels[i:]) in domains for i in range(len(labels))) or any(
        label in domains for label in labels[:-1]
    )
