"""Events in through both doors, summaries out through both doors, numbers checked exactly."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import httpx
from analytics.v1.event_pb2 import Event
from analytics.v1.ingest_pb2 import IngestBatchRequest, IngestRequest
from analytics.v1.report_pb2 import GetStatsRequest, PathViews, Stats
from google.protobuf import json_format

from tests.support.clients import GrpcClients
from tests.support.waiting import eventually
from writer.service import RunningWriter

DAY = "2025-11-14"


def page_view(path: str, user_id: str | None, hour: int = 10, **extra: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "site_id": "site-123",
        "event_type": "page_view",
        "path": path,
        "timestamp": f"{DAY}T{hour:02d}:00:00Z",
        **extra,
    }
    if user_id is not None:
        event["user_id"] = user_id
    return event


def as_proto(event: dict[str, Any]) -> Event:
    return json_format.ParseDict(event, Event())


def expected_stats(events: list[dict[str, Any]], limit: int = 10) -> dict[str, Any]:
    views = Counter(e["path"] for e in events)
    ranked = sorted(views.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return {
        "site_id": "site-123",
        "date": DAY,
        "start_date": DAY,
        "end_date": DAY,
        "total_views": len(events),
        "unique_users": len({e["user_id"] for e in events if e.get("user_id")}),
        "top_paths": [{"path": p, "views": v} for p, v in ranked],
    }


async def http_stats(http: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await http.get("/stats", params={"site_id": "site-123", **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_seed_curl_example_is_accepted_and_counted(
    http: httpx.AsyncClient, writer: RunningWriter
) -> None:
    response = await http.post("/event", json=page_view("/home", "u10"))

    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "event_id": response.json()["event_id"]}
    await eventually(
        lambda: http_stats(http, date=DAY),
        {
            "site_id": "site-123",
            "date": DAY,
            "start_date": DAY,
            "end_date": DAY,
            "total_views": 1,
            "unique_users": 1,
            "top_paths": [{"path": "/home", "views": 1}],
        },
    )


async def test_events_through_both_doors_add_up_in_both_reports(
    http: httpx.AsyncClient, rpc: GrpcClients, writer: RunningWriter
) -> None:
    rng = random.Random(7)
    paths = ["/", "/pricing", "/blog", "/docs", "/about", "/a", "/b", "/c", "/d", "/e", "/f"]
    events = [
        page_view(rng.choice(paths), rng.choice([None, "u1", "u2", "u3", "u4", "u5"]))
        for _ in range(120)
    ]
    for event in events[:40]:
        assert (await http.post("/event", json=event)).status_code == 202
    assert (await http.post("/events", json=events[40:70])).json()["accepted"] == 30
    for event in events[70:90]:
        await rpc.ingest.Ingest(IngestRequest(event=as_proto(event)))
    batch = await rpc.ingest.IngestBatch(
        IngestBatchRequest(events=[as_proto(e) for e in events[90:]])
    )
    assert batch.accepted_count == 30

    expected = expected_stats(events)
    await eventually(lambda: http_stats(http, date=DAY), expected)
    stats = await rpc.report.GetStats(GetStatsRequest(site_id="site-123", date=DAY))
    assert stats == Stats(
        site_id="site-123",
        date=DAY,
        start_date=DAY,
        end_date=DAY,
        total_views=expected["total_views"],
        unique_users=expected["unique_users"],
        top_paths=[PathViews(**p) for p in expected["top_paths"]],
    )


async def test_top_paths_rank_by_views_then_path_and_respect_the_limit(
    http: httpx.AsyncClient, writer: RunningWriter
) -> None:
    events = [page_view(p, None) for p in ["/b", "/b", "/a", "/a", "/c", "/z", "/y", "/y"]]
    await http.post("/events", json=events)

    await eventually(
        lambda: http_stats(http, date=DAY, limit="3"),
        {
            **expected_stats(events, limit=3),
            "top_paths": [
                {"path": "/a", "views": 2},
                {"path": "/b", "views": 2},
                {"path": "/y", "views": 2},
            ],
        },
    )


async def test_stats_count_only_the_requested_event_type(
    http: httpx.AsyncClient, writer: RunningWriter
) -> None:
    await http.post(
        "/events",
        json=[
            page_view("/a", "u1"),
            {**page_view("/signup", "u1"), "event_type": "signup"},
            {**page_view("/signup", "u2"), "event_type": "signup"},
        ],
    )

    await eventually(
        lambda: http_stats(http, date=DAY, event_type="signup"),
        {
            "site_id": "site-123",
            "date": DAY,
            "start_date": DAY,
            "end_date": DAY,
            "total_views": 2,
            "unique_users": 2,
            "top_paths": [{"path": "/signup", "views": 2}],
        },
    )


async def test_an_event_belongs_to_the_utc_day_of_its_timestamp(
    http: httpx.AsyncClient, writer: RunningWriter
) -> None:
    event = {**page_view("/late", "u1"), "timestamp": "2025-11-14T23:30:00-02:00"}
    await http.post("/event", json=event)

    await eventually(
        lambda: http_stats(http, date="2025-11-15"),
        {
            "site_id": "site-123",
            "date": "2025-11-15",
            "start_date": "2025-11-15",
            "end_date": "2025-11-15",
            "total_views": 1,
            "unique_users": 1,
            "top_paths": [{"path": "/late", "views": 1}],
        },
    )
    assert (await http_stats(http, date=DAY))["total_views"] == 0


async def test_all_time_stats_span_every_day(
    http: httpx.AsyncClient, rpc: GrpcClients, writer: RunningWriter
) -> None:
    await http.post(
        "/events",
        json=[
            page_view("/a", "u1"),
            {**page_view("/a", "u1"), "timestamp": "2025-11-15T10:00:00Z"},
            {**page_view("/b", "u2"), "timestamp": "2025-11-16T10:00:00Z"},
        ],
    )

    expected = {
        "site_id": "site-123",
        "date": None,
        "start_date": None,
        "end_date": None,
        "total_views": 3,
        "unique_users": 2,
        "top_paths": [{"path": "/a", "views": 2}, {"path": "/b", "views": 1}],
    }
    await eventually(lambda: http_stats(http), expected)
    stats = await rpc.report.GetStats(GetStatsRequest(site_id="site-123"))
    assert (stats.date, stats.total_views, stats.unique_users) == ("", 3, 2)


async def test_a_site_without_events_has_zero_stats(http: httpx.AsyncClient) -> None:
    assert await http_stats(http, date=DAY) == {
        "site_id": "site-123",
        "date": DAY,
        "start_date": DAY,
        "end_date": DAY,
        "total_views": 0,
        "unique_users": 0,
        "top_paths": [],
    }


async def test_a_resent_event_id_counts_once_whichever_door_it_uses(
    http: httpx.AsyncClient, rpc: GrpcClients, writer: RunningWriter
) -> None:
    event = page_view("/once", "u1", event_id="order-42:view")
    # A resend need not be identical; sent one after another, the first one is kept.
    changed = {**event, "path": "/changed", "user_id": "u2"}

    first = await http.post("/event", json=event)
    batch = await http.post("/events", json=[changed])
    single = await rpc.ingest.Ingest(IngestRequest(event=as_proto(changed)))
    grpc_batch = await rpc.ingest.IngestBatch(IngestBatchRequest(events=[as_proto(changed)]))
    await http.post("/event", json=page_view("/after", None))

    assert first.json() == {"status": "accepted", "event_id": "order-42:view"}
    assert batch.json()["results"] == [
        {"index": 0, "status": "accepted", "event_id": "order-42:view"}
    ]
    assert single.event_id == "order-42:view"
    assert [r.event_id for r in grpc_batch.results] == ["order-42:view"]
    await eventually(
        lambda: http_stats(http, date=DAY),
        {
            "site_id": "site-123",
            "date": DAY,
            "start_date": DAY,
            "end_date": DAY,
            "total_views": 2,
            "unique_users": 1,
            "top_paths": [{"path": "/after", "views": 1}, {"path": "/once", "views": 1}],
        },
    )


async def test_two_sites_sending_the_same_event_id_are_each_counted(
    http: httpx.AsyncClient, rpc: GrpcClients, writer: RunningWriter
) -> None:
    # The README's own example id, sent by two sites, one after the other, through each door.
    first = page_view("/checkout", "u1", event_id="order-42:view")
    second = {**first, "site_id": "other-shop"}

    await http.post("/event", json=first)
    await http.post("/event", json=second)
    await rpc.ingest.Ingest(IngestRequest(event=as_proto({**first, "site_id": "third-shop"})))

    for site in ("site-123", "other-shop", "third-shop"):
        await eventually(
            partial(http_stats, http, site_id=site, date=DAY),
            {
                "site_id": site,
                "date": DAY,
                "start_date": DAY,
                "end_date": DAY,
                "total_views": 1,
                "unique_users": 1,
                "top_paths": [{"path": "/checkout", "views": 1}],
            },
        )


async def test_a_stream_of_events_is_summarized_on_close(
    rpc: GrpcClients, http: httpx.AsyncClient, writer: RunningWriter
) -> None:
    events = [page_view(f"/p{i % 7}", f"u{i % 13}") for i in range(1200)]
    events[5]["path"] = "no-slash"
    events[1100]["site_id"] = ""

    async def stream() -> AsyncIterator[Event]:
        for event in events:
            yield as_proto(event)

    summary = await rpc.ingest.IngestStream(stream())

    assert (summary.accepted_count, summary.rejected_count) == (1198, 2)
    assert [
        (r.index, [(v.field, v.description) for v in r.violations]) for r in summary.rejected
    ] == [
        (5, [("path", "must start with '/'")]),
        (1100, [("site_id", "is required")]),
    ]
    valid = [e for i, e in enumerate(events) if i not in (5, 1100)]
    await eventually(lambda: http_stats(http, date=DAY), expected_stats(valid))


async def test_one_process_serves_both_services_on_one_grpc_and_one_http_address(
    http: httpx.AsyncClient, rpc: GrpcClients
) -> None:
    accepted = await rpc.ingest.Ingest(IngestRequest(event=as_proto(page_view("/a", None))))
    stats = await rpc.report.GetStats(GetStatsRequest(site_id="site-123", date="1999-01-01"))
    posted = await http.post("/event", json=page_view("/b", None))
    reported = await http.get("/stats", params={"site_id": "site-123", "date": "1999-01-01"})

    assert accepted.event_id
    assert stats == Stats(
        site_id="site-123", date="1999-01-01", start_date="1999-01-01", end_date="1999-01-01"
    )
    assert posted.status_code == 202
    assert reported.status_code == 200


async def test_injection_shaped_values_are_stored_and_reported_verbatim(
    http: httpx.AsyncClient, writer: RunningWriter
) -> None:
    hostile = "/'); DROP TABLE events; --"
    await http.post(
        "/event",
        json={**page_view(hostile, "' OR '1'='1"), "event_type": "x' OR 'x'='x"},
    )

    await eventually(
        lambda: http_stats(http, date=DAY, event_type="x' OR 'x'='x"),
        {
            "site_id": "site-123",
            "date": DAY,
            "start_date": DAY,
            "end_date": DAY,
            "total_views": 1,
            "unique_users": 1,
            "top_paths": [{"path": hostile, "views": 1}],
        },
    )


async def test_a_stream_of_batches_is_answered_batch_by_batch_in_order(
    rpc: GrpcClients, http: httpx.AsyncClient, writer: RunningWriter
) -> None:
    batches = [[page_view(f"/p{b}-{i % 3}", f"u{i % 5}") for i in range(200)] for b in range(3)]
    batches[1][7]["path"] = "no-slash"

    async def requests() -> AsyncIterator[IngestBatchRequest]:
        for batch in batches:
            yield IngestBatchRequest(events=[as_proto(event) for event in batch])

    answers = [answer async for answer in rpc.ingest.IngestBatchStream(requests())]

    assert [(a.accepted_count, a.rejected_count) for a in answers] == [(200, 0), (199, 1), (200, 0)]
    assert [
        (r.index, [(v.field, v.description) for v in r.violations])
        for r in answers[1].results
        if r.violations
    ] == [(7, [("path", "must start with '/'")])]
    assert [r.index for r in answers[2].results] == list(range(200))
    valid = [e for b in batches for e in b if e["path"] != "no-slash"]
    await eventually(lambda: http_stats(http, date=DAY), expected_stats(valid))
