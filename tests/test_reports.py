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

from report_server.http import VISIT_METRICS
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
        # u1's two, u2's and u3's: one page view each; /blog/a has no visitor.
        "visits": {"value": 4, "previous": 0},
        "bounce_rate": {"value": 100.0, "previous": 0.0},
        "views_per_visit": {"value": 1.0, "previous": 0.0},
        "visit_duration": {"value": 0.0, "previous": 0.0},
    }
    assert (over_grpc.views.value, over_grpc.visitors.value, over_grpc.views.previous) == (5, 3, 0)
    assert (over_grpc.visits.value, over_grpc.visits.previous) == (4, 0)
    assert (over_grpc.bounce_rate.value, over_grpc.bounce_rate.previous) == (100.0, 0.0)


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
            "visits": 1,
        },
        {
            "label": "2025-11-02T01:00:00-05:00",
            "start": "2025-11-02T06:00:00Z",
            "views": 1,
            "visitors": 1,
            "visits": 1,
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
        {"value": "", "views": 2, "visitors": 2, "visits": 2},
        {"value": "t.co", "views": 1, "visitors": 0, "visits": 0},
    ]
    assert response.json()["total_rows"] == 2
    assert [(r.value, r.views, r.visitors) for r in over_grpc.rows] == [("", 2, 2), ("t.co", 1, 0)]


# u1 lands on /landing, reads /pricing 20 minutes later, and comes back 40 minutes after that:
# two visits; u2 lands and leaves. All on 2025-11-14 in Berlin (UTC+1).
VISITING = [
    {"path": "/landing", "user_id": "u1", "timestamp": "2025-11-14T10:00:00Z"},
    {"path": "/pricing", "user_id": "u1", "timestamp": "2025-11-14T10:20:00Z"},
    {"path": "/landing", "user_id": "u2", "timestamp": "2025-11-14T10:05:00Z"},
    {"path": "/docs", "user_id": "u1", "timestamp": "2025-11-14T11:00:00Z"},
]
VISITING_SCOPE = {
    "site_id": "visited",
    "start_date": "2025-11-14",
    "end_date": "2025-11-14",
    "timezone": "Europe/Berlin",
}


@pytest.fixture
async def visited(http: httpx.AsyncClient, writer: RunningWriter) -> None:
    events = [{"site_id": "visited", "event_type": "page_view", **e} for e in VISITING]
    assert (await http.post("/events", json=events)).json()["accepted"] == len(VISITING)

    async def views() -> int:
        response = await http.get("/reports/metrics", params=VISITING_SCOPE)
        total: int = response.json()["views"]["value"]
        return total

    await eventually(views, len(VISITING))


def visiting_scope() -> Scope:
    return Scope(
        site_id="visited", start_date="2025-11-14", end_date="2025-11-14", timezone="Europe/Berlin"
    )


async def test_visits_bounce_rate_views_per_visit_and_duration_over_both_doors(
    visited: None, http: httpx.AsyncClient, rpc: GrpcClients
) -> None:
    response = await http.get("/reports/metrics", params=VISITING_SCOPE)
    over_grpc = await rpc.report.GetMetrics(MetricsRequest(scope=visiting_scope()))

    body = response.json()
    assert {name: body[name] for name in VISIT_METRICS} == {
        "visits": {"value": 3},
        "bounce_rate": {"value": 200 / 3},
        "views_per_visit": {"value": 4 / 3},
        "visit_duration": {"value": 400.0},
    }
    assert [
        (over_grpc.visits.value, over_grpc.visits.HasField("previous")),
        over_grpc.bounce_rate.value,
        over_grpc.views_per_visit.value,
        over_grpc.visit_duration.value,
    ] == [(3, False), 200 / 3, 4 / 3, 400.0]


async def test_visits_by_entry_page_and_by_hour_over_both_doors(
    visited: None, http: httpx.AsyncClient, rpc: GrpcClients
) -> None:
    entries = await http.get(
        "/reports/breakdown",
        params={**VISITING_SCOPE, "dimension": "entry_page", "order_by": "visits"},
    )
    hours = await http.get("/reports/timeseries", params={**VISITING_SCOPE, "interval": "hour"})
    entries_over_grpc = await rpc.report.GetBreakdown(
        BreakdownRequest(scope=visiting_scope(), dimension="entry_page", order_by="visits")
    )
    hours_over_grpc = await rpc.report.GetTimeSeries(
        TimeSeriesRequest(scope=visiting_scope(), interval="hour")
    )

    assert entries.json()["rows"] == [
        {"value": "/landing", "views": 3, "visitors": 2, "visits": 2},
        {"value": "/docs", "views": 1, "visitors": 1, "visits": 1},
    ]
    assert [(r.value, r.views, r.visitors, r.visits) for r in entries_over_grpc.rows] == [
        ("/landing", 3, 2, 2),
        ("/docs", 1, 1, 1),
    ]
    busy = [(b["label"], b["views"], b["visits"]) for b in hours.json()["buckets"] if b["views"]]
    assert busy == [
        ("2025-11-14T11:00:00+01:00", 3, 2),
        ("2025-11-14T12:00:00+01:00", 1, 1),
    ]
    assert [(b.label, b.views, b.visits) for b in hours_over_grpc.buckets if b.views] == busy


async def test_views_and_visitors_alone_leave_the_visits_out_over_both_doors(
    visited: None, http: httpx.AsyncClient, rpc: GrpcClients
) -> None:
    metrics = await http.get("/reports/metrics", params={**VISITING_SCOPE, "metrics": "views"})
    rows = await http.get(
        "/reports/breakdown",
        params={**VISITING_SCOPE, "dimension": "path", "metrics": "views,visitors"},
    )
    series = await rpc.report.GetTimeSeries(
        TimeSeriesRequest(scope=visiting_scope(), metrics=["visitors"])
    )

    assert "visits" not in metrics.json()
    assert (metrics.json()["views"], metrics.json()["visitors"]) == ({"value": 4}, {"value": 2})
    assert rows.json()["rows"][0] == {"value": "/landing", "views": 2, "visitors": 2}
    assert [(b.views, b.HasField("visits")) for b in series.buckets] == [(4, False)]


async def test_an_unknown_metric_is_refused_naming_it(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/reports/metrics", params={"site_id": "shop", "metrics": "views,bounces"}
    )

    assert response.status_code == 400
    assert response.json()["field_violations"] == [
        {
            "field": "metrics",
            "description": "must name some of views, visitors, visits, bounce_rate, "
            "views_per_visit, visit_duration, got 'bounces'",
        }
    ]


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
            "description": "must be one of event_type, path, referrer_host, browser, os, device, "
            "country, entry_page, exit_page, source, utm_source, utm_medium, utm_campaign, "
            "utm_term, utm_content or property:<key>, got 'colour'",
        },
    ]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [
        ("interval", "a minute series covers at most 1 day; the range has 7")
    ]


async def test_an_unknown_filter_dimension_or_ranking_is_refused_naming_it_over_grpc(
    rpc: GrpcClients,
) -> None:
    landing = Filter(dimension="landing_page", operator="is", values=["/"])
    with pytest.raises(grpc.aio.AioRpcError) as bad_filter:
        await rpc.report.GetMetrics(MetricsRequest(scope=Scope(site_id="shop", filters=[landing])))
    with pytest.raises(grpc.aio.AioRpcError) as bad_order:
        await rpc.report.GetBreakdown(
            BreakdownRequest(
                scope=Scope(site_id="shop"), dimension="entry_page", order_by="bounces"
            )
        )

    assert (bad_filter.value.code(), bad_order.value.code()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert field_violations(bad_filter.value) == [
        (
            "scope.filters[0].dimension",
            "must be one of event_type, path, referrer_host, browser, os, device, country, "
            "entry_page, exit_page, source, utm_source, utm_medium, utm_campaign, utm_term, "
            "utm_content or property:<key>, got 'landing_page'",
        )
    ]
    assert field_violations(bad_order.value) == [
        ("order_by", "must be one of visitors, views, visits")
    ]
