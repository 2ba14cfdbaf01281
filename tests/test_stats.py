"""Summaries of a day, a range of days and all time, asked through both doors of the running
services (GetStats over gRPC, `GET /stats` over HTTP), numbers checked exactly."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import pytest
from analytics.v1.report_pb2 import GetStatsRequest, PathViews
from google.protobuf.json_format import ParseDict

from tests.support.clients import GrpcClients, field_violations
from tests.support.stats import summary
from tests.support.waiting import eventually
from writer.service import RunningWriter


def page_view(day: str, path: str, user_id: str | None = None, **extra: str) -> dict[str, Any]:
    event = {"site_id": "site-123", "event_type": "page_view", "path": path}
    event |= {"timestamp": f"{day}T12:00:00Z", **extra}
    return event | ({"user_id": user_id} if user_id else {})


# Three days of one site: u1 comes back every day, u2 on two days, u3 once; anonymous views;
# signups; and another site's visitor with the same user_id.
EVENTS = [
    page_view("2025-11-13", "/", "u1"),
    page_view("2025-11-14", "/", "u1"),
    page_view("2025-11-14", "/pricing", "u2"),
    page_view("2025-11-14", "/pricing"),
    page_view("2025-11-15", "/", "u1"),
    page_view("2025-11-15", "/docs", "u2"),
    page_view("2025-11-15", "/docs", "u3"),
    page_view("2025-11-15", "/signup", "u3", event_type="signup"),
    page_view("2025-11-16", "/", "u1"),
    page_view("2025-11-15", "/", "u9", site_id="other-site"),
]


@pytest.fixture
async def history(http: httpx.AsyncClient, writer: RunningWriter) -> httpx.AsyncClient:
    """The HTTP client, once EVENTS are stored."""
    assert (await http.post("/events", json=EVENTS)).json()["accepted"] == len(EVENTS)
    await eventually(lambda: http_stats(http, event_type="signup"), SIGNUPS_OF_ALL_TIME)
    await eventually(lambda: total_views(http), 8)
    return http


SIGNUPS_OF_ALL_TIME = {
    "site_id": "site-123",
    "date": None,
    "start_date": None,
    "end_date": None,
    "total_views": 1,
    "unique_users": 1,
    "top_paths": [{"path": "/signup", "views": 1}],
}


async def http_stats(http: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await http.get("/stats", params={"site_id": "site-123", **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def total_views(http: httpx.AsyncClient) -> int:
    views: int = (await http_stats(http))["total_views"]
    return views


async def test_a_range_through_both_doors_counts_its_days_and_each_user_once(
    history: httpx.AsyncClient, rpc: GrpcClients
) -> None:
    by_http = await http_stats(history, start_date="2025-11-14", end_date="2025-11-15")
    by_grpc = await rpc.report.GetStats(
        GetStatsRequest(site_id="site-123", start_date="2025-11-14", end_date="2025-11-15")
    )

    assert by_http == {
        "site_id": "site-123",
        "date": None,
        "start_date": "2025-11-14",
        "end_date": "2025-11-15",
        "total_views": 6,
        "unique_users": 3,
        "top_paths": [
            {"path": "/", "views": 2},
            {"path": "/docs", "views": 2},
            {"path": "/pricing", "views": 2},
        ],
    }
    assert by_grpc == summary(
        "site-123",
        6,
        3,
        ("/", 2),
        ("/docs", 2),
        ("/pricing", 2),
        start_date="2025-11-14",
        end_date="2025-11-15",
    )


async def test_a_range_through_both_doors_counts_only_the_event_type_asked_for(
    history: httpx.AsyncClient, rpc: GrpcClients
) -> None:
    by_http = await http_stats(
        history, start_date="2025-11-13", end_date="2025-11-16", event_type="signup", limit="1"
    )
    by_grpc = await rpc.report.GetStats(
        GetStatsRequest(
            site_id="site-123",
            start_date="2025-11-13",
            end_date="2025-11-16",
            event_type="signup",
            limit=1,
        )
    )

    assert (by_http["total_views"], by_http["unique_users"], by_http["top_paths"]) == (
        1,
        1,
        [{"path": "/signup", "views": 1}],
    )
    assert (by_grpc.total_views, by_grpc.unique_users, list(by_grpc.top_paths)) == (
        1,
        1,
        [PathViews(path="/signup", views=1)],
    )


async def test_all_time_through_both_doors_counts_every_day_and_each_user_once(
    history: httpx.AsyncClient, rpc: GrpcClients
) -> None:
    by_http = await http_stats(history, limit="2")
    by_grpc = await rpc.report.GetStats(GetStatsRequest(site_id="site-123", limit=2))

    assert by_http == {
        "site_id": "site-123",
        "date": None,
        "start_date": None,
        "end_date": None,
        "total_views": 8,
        "unique_users": 3,
        "top_paths": [{"path": "/", "views": 4}, {"path": "/docs", "views": 2}],
    }
    assert by_grpc == summary("site-123", 8, 3, ("/", 4), ("/docs", 2))


async def test_a_date_through_both_doors_is_a_range_of_that_one_day(
    history: httpx.AsyncClient, rpc: GrpcClients
) -> None:
    by_http = await http_stats(history, date="2025-11-14")
    by_grpc = await rpc.report.GetStats(GetStatsRequest(site_id="site-123", date="2025-11-14"))

    assert by_http == {
        "site_id": "site-123",
        "date": "2025-11-14",
        "start_date": "2025-11-14",
        "end_date": "2025-11-14",
        "total_views": 3,
        "unique_users": 2,
        "top_paths": [{"path": "/pricing", "views": 2}, {"path": "/", "views": 1}],
    }
    assert by_grpc == summary(
        "site-123",
        3,
        2,
        ("/pricing", 2),
        ("/", 1),
        date="2025-11-14",
        start_date="2025-11-14",
        end_date="2025-11-14",
    )


BAD_RANGES = [
    (
        {"date": "2025-11-14", "start_date": "2025-11-14", "end_date": "2025-11-15"},
        ("date", "must not be given with start_date or end_date"),
    ),
    ({"start_date": "2025-11-14"}, ("end_date", "is required with start_date")),
    ({"end_date": "2025-11-14"}, ("start_date", "is required with end_date")),
    (
        {"start_date": "2025-11-15", "end_date": "2025-11-14"},
        ("end_date", "must not be before start_date"),
    ),
    (
        {"start_date": "2024-01-01", "end_date": "2025-01-01"},
        ("end_date", "must be at most 365 days after start_date"),
    ),
    (
        {"start_date": "2025-11-31", "end_date": "2025-12-01"},
        ("start_date", "must be a calendar date as YYYY-MM-DD"),
    ),
]


@pytest.mark.parametrize(("fields", "violation"), BAD_RANGES)
async def test_a_bad_range_gets_400_naming_the_field(
    http: httpx.AsyncClient, fields: dict[str, str], violation: tuple[str, str]
) -> None:
    response = await http.get("/stats", params={"site_id": "site-123", **fields})

    assert response.status_code == 400
    assert response.json()["field_violations"] == [
        {"field": violation[0], "description": violation[1]}
    ]


@pytest.mark.parametrize(("fields", "violation"), BAD_RANGES)
async def test_a_bad_range_gets_invalid_argument_naming_the_field(
    rpc: GrpcClients, fields: dict[str, str], violation: tuple[str, str]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rpc.report.GetStats(ParseDict({"site_id": "site-123", **fields}, GetStatsRequest()))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [violation]
