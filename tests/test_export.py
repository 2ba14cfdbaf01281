"""Exporting a site's events over a range: NDJSON and CSV over HTTP, a stream over gRPC, every
event of the range once, oldest first, read as it is sent."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from analytics.v1.event_pb2 import Event
from analytics.v1.report_pb2 import ExportRequest, Filter, Scope

from core.migrator import migrate
from report_server.database import STREAM_PREFETCH
from tests.support.clients import GrpcClients
from writer.decoding import row_of
from writer.store import EventStore

FIRST = datetime(2025, 11, 14, tzinfo=UTC)
RECEIVED = datetime(2025, 11, 20, tzinfo=UTC)
# More than the cursor reads at a time, so the export reads it in several steps.
COUNT = STREAM_PREFETCH * 2 + 7


@pytest.fixture
async def stored(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """COUNT events of "shop" one minute apart from FIRST (in UTC: 14 November 00:00 to 01:47
    on the 15th), the 10th, 20th ... of them signups with a property; one of another site."""
    await migrate(pool)
    rows, records = [], []
    for number in range(COUNT):
        event = Event(
            event_id=f"e{number:05d}",
            site_id="shop",
            event_type="signup" if number % 10 == 9 else "page_view",
            path=f"/p{number % 3}",
            user_id=f"u{number % 5}" if number % 2 else "",
            referrer="https://r.example/" if number % 4 == 0 else "",
            properties={"plan": "pro"} if number % 10 == 9 else {},
        )
        event.timestamp.FromDatetime(FIRST + timedelta(minutes=number))
        rows.append(row_of(event, RECEIVED))
        records.append(_record(event))
    other = Event(event_id="x", site_id="other", event_type="page_view", path="/")
    other.timestamp.FromDatetime(FIRST)
    rows.append(row_of(other, RECEIVED))
    await EventStore(pool).store(rows)
    return records


def _record(event: Event) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "site_id": event.site_id,
        "event_type": event.event_type,
        "path": event.path,
        "user_id": event.user_id or None,
        "timestamp": event.timestamp.ToJsonString(),
        "referrer": event.referrer or None,
        "properties": dict(event.properties),
        "received_at": "2025-11-20T00:00:00Z",
    }


RANGE = {"site_id": "shop", "start_date": "2025-11-14", "end_date": "2025-11-14"}


def on_the_14th(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["timestamp"] < "2025-11-15"]


async def test_ndjson_holds_every_event_of_the_range_once_oldest_first(
    stored: list[dict[str, Any]], http: httpx.AsyncClient
) -> None:
    response = await http.get("/reports/export", params=RANGE)

    assert response.headers["content-type"] == "application/x-ndjson"
    assert [json.loads(line) for line in response.text.splitlines()] == on_the_14th(stored)


async def test_csv_holds_the_same_with_a_header_row(
    stored: list[dict[str, Any]], http: httpx.AsyncClient
) -> None:
    response = await http.get("/reports/export", params={**RANGE, "format": "csv"})

    rows = list(csv.DictReader(io.StringIO(response.text)))
    expected = on_the_14th(stored)
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert len(rows) == len(expected)
    assert rows[9] == {
        **{key: value or "" for key, value in expected[9].items()},
        "properties": '{"plan": "pro"}',
    }


async def test_a_grpc_export_streams_the_filtered_events(
    stored: list[dict[str, Any]], rpc: GrpcClients
) -> None:
    request = ExportRequest(
        scope=Scope(
            **RANGE,
            timezone="Asia/Tokyo",
            filters=[Filter(dimension="event_type", values=["signup"])],
        )
    )

    exported = [event async for event in rpc.report.ExportEvents(request)]

    tokyo_day = [
        r
        for r in stored
        if "2025-11-14T15:00" > r["timestamp"] >= "2025-11-13T15:00" and r["event_type"] == "signup"
    ]
    assert [(e.event_id, dict(e.properties)) for e in exported] == [
        (r["event_id"], {"plan": "pro"}) for r in tokyo_day
    ]


async def test_an_empty_csv_export_is_its_header_row(
    http: httpx.AsyncClient, migrated: None
) -> None:
    response = await http.get(
        "/reports/export", params={"site_id": "nobody", "range": "today", "format": "csv"}
    )

    assert response.text == (
        "event_id,site_id,event_type,path,user_id,timestamp,referrer,properties,received_at\n"
    )


async def test_an_unknown_format_is_refused(http: httpx.AsyncClient, migrated: None) -> None:
    response = await http.get("/reports/export", params={**RANGE, "format": "xml"})

    assert response.status_code == 400
    assert response.json()["field_violations"] == [
        {"field": "format", "description": "must be ndjson or csv"}
    ]
