"""Metrics, time series and breakdowns through both doors of the running services
(ReportService over gRPC, `/reports/...` over HTTP): the same numbers, and bad arguments
refused by name."""

from __future__ import annotations

import json

import grpc
import httpx
import pytest
from analytics.v1.report_pb2 import (
    BreakdownRequest,
    Filter,
    MetricsRequest,
    Scope,
    TimeSeriesRequest,
)

from tests.support.clients import GrpcClients, field_violations
from tests.support.waiting import eventually
from writer.service import RunningWriter

# Two days around New York's clocks going back (2025-11-02): 25 hours that day.
EVENTS = [
    {"path": "/", "user_id": "u1", "timestamp": "2025-11-02T05:30:00Z"},  # 01:30 EDT
    {"path": "/", "user_id": "u2", "timestamp": "2025-11-02T06:30:00Z"},  # 01:30 EST
    {"path": "/pricing", "user_id": "u1", "timestamp": "2025-11-02T16:00:00Z"},
    {"path": "/blog/a", "timestamp": "2025-11-03T15:00:00Z", "referrer": "https://t.co/x"},
    {"path": "/pricing", "user_id": "u3", "timestamp": "2025-11-03T15:00:00Z"},
]
SCOPE = {
    "site_id": "shop",
    "start_date": "2025-11-02",
    "end_date": "2025-11-03",
    "timezone": "America/New_York",
}


def grpc_scope(*filters: Filter) -> Scope:
    return Scope(
        site_id=SCOPE["site_id"],
        start_date=SCOPE["start_date"],
        end_date=SCOPE["end_date"],
        timezone=SCOPE["timezone"],
        filters=filters,
    )


PERIOD = {
    "start_date": "2025-11-02",
    "end_date": "2025-11-03",
    "timezone": "America/New_York",
    "start": "2025-11-02T04:00:00Z",
    "end": "2025-11-04T05:00:00Z",
}


@pytest.fixture
async def stored(http: httpx.AsyncClient, writer: RunningWriter) -> None:
    events = [{"site_id": "shop", "event_type": "page_view", **e} for e in EVENTS]
    assert (await http.post("/events", json=events)).json()["accepted"] == len(EVENTS)

    async def views() -> int:
        response = await http.get("/reports/metrics", params=SCOPE)
        total: int = response.json()["views"]["value"]
        return total

    await eventually(views, len(EVENTS))


async def test_metrics_compare_with_the_period_before_over_both_doors(
    stored: None, http: httpx.AsyncClient, rpc: GrpcClients
) -> None:
    response = await http.get("/reports/metrics", params={**SCOPE, "compare": "true"})
    over_grpc = await rpc.report.GetMetrics(MetricsRequest(scope=grpc_scope(), compare=True))

    assert response.json() == {
        "site_id": "shop",
        "period": PERIOD,
        "previous_period": {
            "start_date": "2025-10-31",
            "end_date": "2025-11-01",
            "timezone": "America/New_York",
            "start": "2025-10-31T04:00:00Z",
            "end": "2025-11-02T04:00:00Z",
        },
        "views": {"value": 5, "previous": 0},
        "visitors": {"value": 3, "previous": 0},
    }
    assert (over_grpc.views.value, over_grpc.visitors.value, over_grpc.views.previous) == (5, 3, 0)


async def test_an_hourly_series_shows_the_repeated_hour_twice_over_both_doors(
    stored: None, http: httpx.AsyncClient, rpc: GrpcClients
) -> None:
    response = await http.get("/reports/timeseries", params={**SCOPE, "interval": "hour"})
    over_grpc = await rpc.report.GetTimeSeries(
        TimeSeriesRequest(scope=grpc_scope(), interval="hour")
    )

    buckets = response.json()["buckets"]
    assert len(buckets) == 25 + 24
    assert buckets[1:3] == [
        {
            "label": "2025-11-02T01:00:00-04:00",
            "start": "2025-11-02T05:00:00Z",
            "views": 1,
            "visitors": 1,
        },
        {
            "label": "2025-11-02T01:00:00-05:00",
            "start": "2025-11-02T06:00:00Z",
            "views": 1,
            "visitors": 1,
        },
    ]
    assert [(b.label, b.views) for b in over_grpc.buckets] == [
        (b["label"], b["views"]) for b in buckets
    ]


async def test_a_breakdown_filtered_by_path_prefix_over_both_doors(
    stored: None, http: httpx.AsyncClient, rpc: GrpcClients
) -> None:
    filters = [{"dimension": "path", "operator": "prefix", "values": ["/p", "/b"]}]
    response = await http.get(
        "/reports/breakdown",
        params={**SCOPE, "dimension": "referrer_host", "filters": json.dumps(filters)},
    )
    over_grpc = await rpc.report.GetBreakdown(
        BreakdownRequest(
            scope=grpc_scope(Filter(dimension="path", operator="prefix", values=["/p", "/b"])),
            dimension="referrer_host",
        )
    )

    assert response.json()["rows"] == [
        {"value": "", "views": 2, "visitors": 2},
        {"value": "t.co", "views": 1, "visitors": 0},
    ]
    assert response.json()["total_rows"] == 2
    assert [(r.value, r.views, r.visitors) for r in over_grpc.rows] == [("", 2, 2), ("t.co", 1, 0)]


async def test_bad_report_arguments_are_refused_naming_each_over_both_doors(
    http: httpx.AsyncClient, rpc: GrpcClients
) -> None:
    response = await http.get(
        "/reports/breakdown",
        params={"site_id": "shop", "timezone": "Nowhere", "dimension": "colour", "filters": "[1]"},
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rpc.report.GetTimeSeries(
            TimeSeriesRequest(scope=Scope(site_id="shop", range="7d"), interval="minute")
        )

    assert response.status_code == 400
    assert response.json()["field_violations"] == [
        {
            "field": "filters",
            "description": 'must be a JSON array of {"dimension": ..., "operator": "is" or '
            '"prefix", "values": [...]} objects',
        },
        {"field": "timezone", "description": "is not an IANA time zone: 'Nowhere'"},
        {
            "field": "dimension",
            "description": "must be one of event_type, path, referrer_host or property:<key>, "
            "got 'colour'",
        },
    ]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [
        ("interval", "a minute series covers at most 1 day; the range has 7")
    ]
