"""Events from browsers over HTTP, as a tracker sends them: text/plain bodies, a page's Origin,
a user agent, a client IP from a trusted proxy. What is derived from the request is stored with
the event, and the raw user agent and IP are not; bots and pages of origins a site does not
allow are dropped, answered 202, and counted in the filtered-traffic report."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from analytics.v1.report_pb2 import FilteredTrafficDay, GetFilteredTrafficRequest
from mmdb_writer import MMDBWriter
from nats.js import JetStreamContext
from netaddr import IPSet
from prometheus_client import REGISTRY

from core.settings import Settings
from core.stream import EventStream
from tests.support.clients import GrpcClients
from tests.support.waiting import eventually
from writer.service import RunningWriter

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
PAGE = "https://shop.example"
CLIENT = "203.0.113.7"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The tests' settings, behind a proxy on 127.0.0.1 and with a country database."""
    countries = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="Test-Country")
    countries.insert_network(IPSet(["203.0.113.0/24"]), {"country": {"iso_code": "DE"}})
    countries.to_db_file(str(tmp_path / "countries.mmdb"))
    return dataclasses.replace(
        settings,
        trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),),
        geoip_database=tmp_path / "countries.mmdb",
    )


def view(path: str = "/", **fields: Any) -> dict[str, Any]:
    return {"site_id": "shop", "event_type": "page_view", "path": path, **fields}


async def beacon(
    http: httpx.AsyncClient,
    body: Any,
    *,
    url: str = "/event",
    origin: str = PAGE,
    user_agent: str = CHROME,
    forwarded_for: str = CLIENT,
) -> httpx.Response:
    """What navigator.sendBeacon or the tracker's fetch sends: a JSON string as text/plain."""
    return await http.post(
        url,
        content=json.dumps(body),
        headers={
            "content-type": "text/plain;charset=UTF-8",
            "origin": origin,
            "user-agent": user_agent,
            "x-forwarded-for": forwarded_for,
        },
    )


async def stored(db: asyncpg.Connection, columns: str) -> list[tuple[Any, ...]]:
    order = "" if "count(" in columns else " ORDER BY occurred_at, path"
    rows = await db.fetch(f"SELECT {columns} FROM events{order}")
    return [tuple(row) for row in rows]


async def count(db: asyncpg.Connection) -> int:
    events: int = await db.fetchval("SELECT count(*) FROM events")
    return events


def dropped_metric(reason: str) -> float:
    value = REGISTRY.get_sample_value("analytics_ingest_events_dropped_total", {"reason": reason})
    return value or 0.0


async def test_a_text_plain_beacon_is_stored_with_what_its_request_says(
    http: httpx.AsyncClient, writer: RunningWriter, db: asyncpg.Connection
) -> None:
    event = view(
        "/pricing",
        referrer="https://news.ycombinator.com/item?id=1",
        properties={"utm_source": "hn", "utm_campaign": "launch", "screen": "desktop"},
    )

    response = await beacon(http, event)

    assert response.status_code == 202
    assert response.json()["status"] == "accepted"
    columns = (
        "path, browser, os, device, referrer_host, referrer_source, utm_source, utm_campaign, "
        "utm_medium, country, visitor_id IS NOT NULL"
    )
    await eventually(
        lambda: stored(db, columns),
        [
            (
                "/pricing",
                "Chrome",
                "Windows",
                "desktop",
                "news.ycombinator.com",
                "social",
                "hn",
                "launch",
                None,
                "DE",
                True,
            )
        ],
    )


async def test_neither_the_user_agent_nor_the_ip_reaches_the_stream_or_the_database(
    http: httpx.AsyncClient,
    js: JetStreamContext,
    stream: EventStream,
    writer: RunningWriter,
    db: asyncpg.Connection,
) -> None:
    await beacon(http, view(), user_agent=CHROME + " Unique/42", forwarded_for="203.0.113.99")
    message = await js.get_last_msg(stream.name, stream.subject)

    assert b"Unique/42" not in (message.data or b"")
    assert b"203.0.113.99" not in (message.data or b"")
    await eventually(lambda: count(db), 1)
    row = await db.fetchrow("SELECT * FROM events")
    assert row is not None
    assert not [value for value in row.values() if "Unique/42" in str(value)]
    assert not [value for value in row.values() if "203.0.113.99" in str(value)]


async def test_a_visitor_is_the_same_for_the_same_ip_and_browser_and_another_for_others(
    http: httpx.AsyncClient, writer: RunningWriter, db: asyncpg.Connection
) -> None:
    await beacon(http, view("/a", timestamp="2025-11-14T10:00:00Z"))
    await beacon(http, view("/b", timestamp="2025-11-14T10:01:00Z"))
    await beacon(http, view("/c", timestamp="2025-11-14T10:02:00Z"), forwarded_for="203.0.113.8")
    await beacon(http, view("/d", timestamp="2025-11-14T10:03:00Z"), user_agent=CHROME + " x")

    await eventually(lambda: count(db), 4)
    visitors = [row[0] for row in await stored(db, "visitor_id")]
    assert visitors[0] == visitors[1]
    assert len(set(visitors)) == 3


async def test_a_forwarded_for_header_from_an_untrusted_peer_is_ignored(
    settings: Settings, writer: RunningWriter, db: asyncpg.Connection, api: Any
) -> None:
    # Seen from outside the trusted proxies' range, the header is anyone's to write.
    untrusted = dataclasses.replace(settings, trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),))
    from devstack.api import SERVICES  # noqa: PLC0415
    from runtime.serve import serving  # noqa: PLC0415  # a second server, of other settings

    async with (
        serving(dataclasses.replace(untrusted, sites_reconcile_interval=60), SERVICES) as other,
        httpx.AsyncClient(base_url=f"http://{other.http}") as client,
    ):
        await beacon(client, view("/a", timestamp="2025-11-14T10:00:00Z"), forwarded_for="1.1.1.1")
        await beacon(client, view("/b", timestamp="2025-11-14T10:01:00Z"), forwarded_for="2.2.2.2")

    await eventually(lambda: count(db), 2)
    [(first,), (second,)] = await stored(db, "visitor_id")
    assert first == second
    assert await stored(db, "country") == [(None,), (None,)]


async def test_a_bot_is_answered_202_with_the_reason_and_nothing_is_stored(
    http: httpx.AsyncClient, writer: RunningWriter, db: asyncpg.Connection
) -> None:
    before = dropped_metric("bot")

    response = await beacon(http, view(), user_agent=GOOGLEBOT)

    assert response.status_code == 202
    assert response.json() == {"status": "dropped", "reason": "bot"}
    assert response.headers["x-analytics-dropped"] == "bot"
    assert dropped_metric("bot") == before + 1
    await beacon(http, view("/after"))
    await eventually(lambda: stored(db, "path"), [("/after",)])


async def test_a_batch_reports_each_dropped_event(http: httpx.AsyncClient) -> None:
    response = await beacon(
        http, [view("/a"), {"site_id": "shop"}], url="/events", user_agent="HeadlessChrome/131"
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"], body["dropped"]) == (0, 1, 1)
    assert body["results"][0] == {"index": 0, "status": "dropped", "reason": "bot"}
    assert response.headers["x-analytics-dropped"] == "bot"


async def test_events_from_origins_a_site_does_not_allow_are_dropped(
    http: httpx.AsyncClient, writer: RunningWriter, db: asyncpg.Connection
) -> None:
    created = await http.post(
        "/sites", json={"site_id": "shop", "allowed_origins": ["shop.example"]}
    )
    assert created.json()["allowed_origins"] == ["shop.example"]

    async def other_origin_answer() -> str:
        probe = view("/probe", event_id="probe")
        return str((await beacon(http, probe, origin="https://evil.example")).json()["status"])

    # The record reaches the ingest server through NATS KV, within moments.
    await eventually(other_origin_answer, "dropped")
    dropped = await beacon(http, view("/x"), origin="https://evil.example")
    kept = await beacon(http, view("/y"), origin="http://shop.example:8080")

    assert dropped.headers["x-analytics-dropped"] == "origin_not_allowed"
    assert kept.json()["status"] == "accepted"
    await eventually(lambda: stored(db, "count(*) FILTER (WHERE path = '/y')"), [(1,)])
    assert await stored(db, "count(*) FILTER (WHERE path = '/x')") == [(0,)]


async def test_a_request_without_origin_is_no_browsers_and_is_stored_as_sent(
    http: httpx.AsyncClient, writer: RunningWriter, db: asyncpg.Connection
) -> None:
    response = await http.post(
        "/event", json=view(), headers={"user-agent": "curl/8.5.0", "x-forwarded-for": CLIENT}
    )

    assert response.json()["status"] == "accepted"
    await eventually(lambda: stored(db, "browser, visitor_id, country"), [(None, None, None)])


async def test_dropped_events_are_in_the_filtered_traffic_report_of_both_doors(
    http: httpx.AsyncClient, rpc: GrpcClients, writer: RunningWriter
) -> None:
    await http.post("/sites", json={"site_id": "shop", "allowed_origins": [PAGE]})
    for _ in range(3):
        await beacon(http, view(), user_agent=GOOGLEBOT)
    today = datetime.now(UTC).date().isoformat()
    query = {"site_id": "shop", "start_date": today, "end_date": today}

    async def report() -> Any:
        return (await http.get("/filtered-traffic", params=query)).json()

    await eventually(
        report,
        {
            "site_id": "shop",
            "start_date": today,
            "end_date": today,
            "total": 3,
            "days": [{"day": today, "reason": "bot", "count": 3}],
        },
    )
    answer = await rpc.report.GetFilteredTraffic(GetFilteredTrafficRequest(**query))
    assert list(answer.days) == [FilteredTrafficDay(day=today, reason="bot", count=3)]
    assert answer.total == 3


async def test_the_filtered_traffic_report_names_missing_dates(http: httpx.AsyncClient) -> None:
    response = await http.get("/filtered-traffic", params={"site_id": "shop"})

    assert response.status_code == 400
    assert response.json()["field_violations"] == [
        {"field": "start_date", "description": "is required"},
        {"field": "end_date", "description": "is required"},
    ]
