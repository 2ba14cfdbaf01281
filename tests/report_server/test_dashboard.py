"""The dashboard's files as the report service serves them: the right content types, a page
revalidated on every load, files addressed by their content's digest and kept a year, a 304
for an unchanged ETag, gzip when accepted, and uPlot's licence beside uPlot."""

from __future__ import annotations

import gzip
import re

import httpx
import pytest

from core.errors import NotFound
from report_server.dashboard import Dashboard
from transports.http_app import Reply, Request


async def _get(name: str, **headers: str) -> Reply:
    """The dashboard's answer to `GET /dashboard/{name}` with those headers."""

    async def receive() -> dict[str, str]:
        raise AssertionError("a GET has no body to read")

    request = Request(
        "GET",
        f"/dashboard/{name}",
        {key.replace("_", "-").encode(): value.encode() for key, value in headers.items()},
        b"",
        receive,
        path_params={"name": name},
    )
    return await Dashboard().asset(request)


def _headers(reply: Reply) -> dict[bytes, bytes]:
    return dict(reply.headers)


async def test_the_report_service_serves_the_page_at_the_root(http: httpx.AsyncClient) -> None:
    response = await http.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert "<title>Analytics dashboard</title>" in response.text
    # Its files by the digest of their content: a changed file is a new address.
    assert re.findall(r'(?:src|href)="(/dashboard/[^"?]+)\?v=[0-9a-f]{12}"', response.text) == [
        "/dashboard/uPlot.min.css",
        "/dashboard/dashboard.css",
        "/dashboard/uPlot.iife.min.js",
        "/dashboard/dashboard.js",
    ]


async def test_the_files_are_served_with_their_types_and_kept_a_year() -> None:
    names = ("dashboard.js", "dashboard.css", "uPlot.iife.min.js", "uPlot.LICENSE.txt")
    headers = {name: _headers(await _get(name)) for name in names}

    assert {name: h[b"content-type"] for name, h in headers.items()} == {
        "dashboard.js": b"text/javascript; charset=utf-8",
        "dashboard.css": b"text/css; charset=utf-8",
        "uPlot.iife.min.js": b"text/javascript; charset=utf-8",
        "uPlot.LICENSE.txt": b"text/plain; charset=utf-8",
    }
    assert {h[b"cache-control"] for h in headers.values()} == {
        b"public, max-age=31536000, immutable"
    }
    assert {h[b"x-content-type-options"] for h in headers.values()} == {b"nosniff"}


async def test_uplot_ships_with_its_mit_licence() -> None:
    licence = (await _get("uPlot.LICENSE.txt")).body

    assert b"The MIT License (MIT)" in licence
    assert b"Copyright (c) 2022 Leon Sorokin" in licence


async def test_an_unchanged_file_is_answered_304_by_its_etag() -> None:
    first = _headers(await _get("dashboard.js"))

    again = await _get("dashboard.js", if_none_match=first[b"etag"].decode())

    assert again.status == 304
    assert again.body is None
    assert _headers(again)[b"etag"] == first[b"etag"]


async def test_files_are_gzipped_for_clients_that_accept_it() -> None:
    plain = await _get("uPlot.iife.min.js")
    packed = await _get("uPlot.iife.min.js", accept_encoding="gzip, br")

    assert _headers(packed)[b"content-encoding"] == b"gzip"
    assert gzip.decompress(packed.body) == plain.body
    assert plain.body.startswith(b"/*! https://github.com/leeoniya/uPlot (v1.6.32) */")


async def test_an_unknown_file_is_not_found() -> None:
    with pytest.raises(NotFound):
        await _get("secrets.py")
