"""Where a visitor came from: the referrer's host and its class."""

from __future__ import annotations

import pytest

from ingest_server.referrers import referrer_of


@pytest.mark.parametrize(
    ("referrer", "expected"),
    [
        ("https://www.google.co.uk/", ("google.co.uk", "search")),
        ("https://duckduckgo.com/?q=x", ("duckduckgo.com", "search")),
        ("https://l.facebook.com/l.php?u=x", ("l.facebook.com", "social")),
        ("https://news.ycombinator.com/item?id=1", ("news.ycombinator.com", "social")),
        ("https://t.co/abc", ("t.co", "social")),
        ("https://blog.example.org/post", ("blog.example.org", "other")),
    ],
)
def test_a_referrer_is_classed_by_its_host(referrer: str, expected: tuple[str, str]) -> None:
    assert referrer_of(referrer, "shop.example") == expected


def test_no_referrer_is_direct() -> None:
    assert referrer_of("", "shop.example") == ("", "direct")


def test_a_referrer_of_the_pages_own_site_is_direct() -> None:
    assert referrer_of("https://www.shop.example/cart", "shop.example") == ("", "direct")


def test_a_referrer_that_is_no_url_is_direct() -> None:
    assert referrer_of("not a url", "shop.example") == ("", "direct")
