"""`GET /tracker.js`: small, cacheable, revalidated by its ETag."""

from __future__ import annotations

import gzip

import httpx

from ingest_server.tracker import MAX_GZIPPED_BYTES, Tracker


def test_the_tracker_is_at_most_one_and_a_half_kilobytes_gzipped() -> None:
    tracker = Tracker()

    assert len(tracker.gzipped) <= MAX_GZIPPED_BYTES == 1536
    assert gzip.decompress(tracker.gzipped) == tracker.script


async def test_the_tracker_is_served_gzipped_to_clients_that_accept_it(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/tracker.js", headers={"accept-encoding": "gzip, br"})

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["cache-control"] == "public, max-age=3600"
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.content == Tracker().script  # httpx decompresses it
    assert int(response.headers["content-length"]) == len(Tracker().gzipped)


async def test_the_tracker_is_served_plain_to_clients_that_do_not(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/tracker.js", headers={"accept-encoding": "identity"})

    assert "content-encoding" not in response.headers
    assert response.content == Tracker().script


async def test_an_unchanged_tracker_is_answered_304_by_its_etag(http: httpx.AsyncClient) -> None:
    first = await http.get("/tracker.js")

    again = await http.get("/tracker.js", headers={"if-none-match": first.headers["etag"]})

    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]


async def test_another_etag_gets_the_tracker_again(http: httpx.AsyncClient) -> None:
    response = await http.get("/tracker.js", headers={"if-none-match": '"an-old-version"'})

    assert response.status_code == 200
