"""Live reports: each accepted event reaches a watcher (WatchLive over gRPC, Server-Sent Events
over HTTP) from the event stream itself, with the site's visitors of the last 5 minutes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import httpx
import nats
import pytest
from analytics.v1.event_pb2 import Event
from analytics.v1.report_pb2 import LiveUpdate, WatchLiveRequest

from core.errors import ResourceExhausted
from core.settings import Settings
from core.stream import EventStream, ensure_stream
from ingest_server.publisher import EventPublisher
from report_server.database import ReportDatabase
from report_server.live import WATCHER_QUEUE, LiveHub
from tests.support.clients import GrpcClients
from tests.support.waiting import eventually
from writer.service import RunningWriter

SECOND = 1.0  # how soon after it is accepted a watcher must see an event


def page_view(path: str, user_id: str, at: datetime) -> dict[str, str]:
    return {
        "site_id": "live-site",
        "event_type": "page_view",
        "path": path,
        "user_id": user_id,
        "timestamp": at.isoformat(),
    }


def browser(user_agent: str) -> dict[str, str]:
    """The headers of a page's request: its origin makes the event a browser's, whose visitor
    is derived from the request when it has no user_id."""
    return {"origin": "https://live.example", "user-agent": user_agent}


async def next_update(updates: AsyncIterator[LiveUpdate]) -> LiveUpdate:
    return await asyncio.wait_for(anext(updates), timeout=10)


async def test_a_watcher_sees_each_accepted_event_with_the_live_visitors(
    http: httpx.AsyncClient, rpc: GrpcClients
) -> None:
    call = rpc.report.WatchLive(WatchLiveRequest(site_id="live-site"))
    updates = aiter(call)
    first = await next_update(updates)
    now = datetime.now(UTC)

    await http.post("/event", json=page_view("/a", "u1", now))
    accepted_at = asyncio.get_running_loop().time()
    seen = await next_update(updates)
    latency = asyncio.get_running_loop().time() - accepted_at
    await http.post("/event", json=page_view("/b", "u2", now))
    second = await next_update(updates)
    call.cancel()

    assert first == LiveUpdate(visitors=0)
    assert (seen.event.path, seen.event.event_type, seen.visitors) == ("/a", "page_view", 1)
    assert seen.event.timestamp.ToDatetime(UTC) == now
    assert latency < SECOND
    assert (second.event.path, second.visitors) == ("/b", 2)


async def test_the_first_update_counts_the_visitors_stored_in_the_last_5_minutes(
    http: httpx.AsyncClient, rpc: GrpcClients, writer: RunningWriter, db: asyncpg.Connection
) -> None:
    now = datetime.now(UTC)
    events = [
        page_view("/", "recent-1", now - timedelta(minutes=1)),
        page_view("/", "recent-2", now - timedelta(minutes=4)),
        page_view("/", "recent-1", now - timedelta(minutes=2)),
        page_view("/", "earlier", now - timedelta(minutes=6)),
    ]
    await http.post("/events", json=events)
    await eventually(lambda: _stored(db), 4)

    call = rpc.report.WatchLive(WatchLiveRequest(site_id="live-site"))
    first = await next_update(aiter(call))
    call.cancel()

    assert first == LiveUpdate(visitors=2)


async def test_anonymous_visitors_read_from_the_database_and_the_stream_are_one_set(
    http: httpx.AsyncClient, rpc: GrpcClients, writer: RunningWriter, db: asyncpg.Connection
) -> None:
    now = datetime.now(UTC)
    anonymous = {k: v for k, v in page_view("/", "", now).items() if k != "user_id"}
    for agent in ("Firefox", "Safari"):
        await http.post("/event", json=anonymous, headers=browser(agent))
    await eventually(lambda: _stored(db), 2)
    call = rpc.report.WatchLive(WatchLiveRequest(site_id="live-site"))
    updates = aiter(call)
    first = await next_update(updates)

    await http.post("/event", json=anonymous, headers=browser("Firefox"))
    again = await next_update(updates)
    await http.post("/event", json=anonymous, headers=browser("Opera"))
    new = await next_update(updates)
    call.cancel()

    assert (first.visitors, again.visitors, new.visitors) == (2, 2, 3)


async def _stored(db: asyncpg.Connection) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM events")
    return count


async def test_server_sent_events_carry_each_accepted_event(http: httpx.AsyncClient) -> None:
    now = datetime.now(UTC)
    async with http.stream("GET", "/reports/live", params={"site_id": "live-site"}) as response:
        lines = response.aiter_lines()
        first = await asyncio.wait_for(anext(lines), 10)
        await http.post("/event", json=page_view("/pricing", "u1", now))
        data = [line async for line in _until_data(lines)]

    assert response.headers["content-type"] == "text/event-stream"
    assert json.loads(first.removeprefix("data: ")) == {"event": None, "visitors": 0}
    assert json.loads(data[0].removeprefix("data: ")) == {
        "event": {
            "event_type": "page_view",
            "path": "/pricing",
            "timestamp": now.isoformat().replace("+00:00", "Z"),
        },
        "visitors": 1,
    }


async def _until_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The next `data:` line."""
    while True:
        line = await asyncio.wait_for(anext(lines), 10)
        if line.startswith("data: "):
            yield line
            return


async def test_a_bad_site_id_is_refused_over_both_doors(
    http: httpx.AsyncClient, rpc: GrpcClients
) -> None:
    response = await http.get("/reports/live", params={"site_id": "not a site"})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in rpc.report.WatchLive(WatchLiveRequest(site_id="not a site")):
            pass

    assert response.status_code == 400
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_watcher_that_falls_behind_is_dropped_and_the_others_are_not(
    settings: Settings, stream: EventStream, pool: asyncpg.Pool, migrated: None
) -> None:
    nc = await nats.connect(settings.nats_url or "")
    try:
        await ensure_stream(nc.jetstream(), stream)
        hub = LiveHub(nc, stream, ReportDatabase(pool, acquire_timeout=5, statement_timeout=10))
        slow, keeping_up = hub.watch("live-site"), hub.watch("live-site")
        await anext(slow)
        await anext(keeping_up)
        publisher = EventPublisher(nc, stream, timeout=5)
        await publisher.start()
        kept: list[str] = []

        async def keep_up() -> None:
            while len(kept) < WATCHER_QUEUE + 1:
                update = await anext(keeping_up)
                assert update.event is not None
                kept.append(update.event.path)

        reading = asyncio.create_task(keep_up())
        events = [_stream_event(n) for n in range(WATCHER_QUEUE + 1)]
        await publisher.publish(events, datetime.now(UTC))
        await asyncio.wait_for(reading, 30)

        with pytest.raises(ResourceExhausted, match="the watcher fell more than 1000 updates"):
            await _drain(slow)
        assert kept == [f"/{n}" for n in range(WATCHER_QUEUE + 1)]
    finally:
        await nc.close()


async def _drain(updates: AsyncIterator[object]) -> None:
    async for _ in updates:
        pass


def _stream_event(number: int) -> Event:
    event = Event(
        event_id=f"e{number}", site_id="live-site", event_type="page_view", path=f"/{number}"
    )
    event.timestamp.GetCurrentTime()
    return event
