"""CORS: browsers on allowed origins may read the shim's answers; others are told no."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from core.settings import Settings
from devstack.api import SERVICES
from runtime.serve import serving

SHOP = "https://shop.example"
PREFLIGHT = {"Origin": SHOP, "Access-Control-Request-Method": "POST"}


@pytest.fixture
async def shop_only(settings: Settings, migrated: None) -> AsyncIterator[httpx.AsyncClient]:
    """The API allowing only SHOP as a cross origin."""
    async with (
        serving(replace(settings, cors_allow_origins=(SHOP,)), SERVICES) as api,
        httpx.AsyncClient(base_url=f"http://{api.http}") as client,
    ):
        yield client


async def test_a_preflight_from_an_allowed_origin_is_answered_with_what_it_may_send(
    shop_only: httpx.AsyncClient,
) -> None:
    response = await shop_only.options(
        "/event",
        headers={**PREFLIGHT, "Access-Control-Request-Headers": "content-type, authorization"},
    )

    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == SHOP
    assert response.headers["access-control-allow-methods"] == "POST"
    assert response.headers["access-control-allow-headers"] == "Content-Type, Authorization"
    assert response.headers["access-control-max-age"] == "86400"


async def test_a_preflight_from_another_origin_is_refused_naming_the_origin(
    shop_only: httpx.AsyncClient,
) -> None:
    response = await shop_only.options(
        "/event", headers={**PREFLIGHT, "Origin": "https://x.example"}
    )

    assert response.status_code == 403
    assert response.json()["field_violations"] == [
        {"field": "origin", "description": "is not among CORS_ALLOW_ORIGINS"}
    ]
    assert "access-control-allow-origin" not in response.headers


async def test_a_preflight_for_a_method_the_route_lacks_is_refused(
    shop_only: httpx.AsyncClient,
) -> None:
    response = await shop_only.options(
        "/stats", headers={**PREFLIGHT, "Access-Control-Request-Method": "DELETE"}
    )

    assert response.status_code == 403
    assert response.json()["field_violations"] == [
        {"field": "Access-Control-Request-Method", "description": "DELETE is not allowed here"}
    ]


async def test_a_preflight_asking_for_other_headers_is_refused(
    shop_only: httpx.AsyncClient,
) -> None:
    response = await shop_only.options(
        "/event", headers={**PREFLIGHT, "Access-Control-Request-Headers": "x-secret"}
    )

    assert response.status_code == 403
    assert response.json()["field_violations"] == [
        {
            "field": "Access-Control-Request-Headers",
            "description": "only Content-Type and Authorization are allowed",
        }
    ]


async def test_an_answer_to_an_allowed_origin_names_it(shop_only: httpx.AsyncClient) -> None:
    response = await shop_only.get("/stats", params={"site_id": "s"}, headers={"Origin": SHOP})

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SHOP
    assert response.headers["vary"] == "Origin"


async def test_an_answer_to_another_origin_does_not_allow_it(
    shop_only: httpx.AsyncClient,
) -> None:
    response = await shop_only.get(
        "/stats", params={"site_id": "s"}, headers={"Origin": "https://x.example"}
    )

    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["vary"] == "Origin"


async def test_with_any_origin_allowed_every_origin_may_read_answers(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/stats", params={"site_id": "s"}, headers={"Origin": SHOP})

    assert response.headers["access-control-allow-origin"] == "*"


async def test_an_error_answer_carries_the_cors_header_too(shop_only: httpx.AsyncClient) -> None:
    response = await shop_only.post("/event", json={}, headers={"Origin": SHOP})

    assert response.status_code == 400
    assert response.headers["access-control-allow-origin"] == SHOP
