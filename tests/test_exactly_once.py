"""Every accepted event reaches PostgreSQL exactly once, through crashes and resends."""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import pytest
from analytics.v1.event_pb2 import Event
from analytics.v1.ingest_pb2 import IngestBatchRequest
from nats.js import JetStreamContext

from core.settings import Settings
from core.stream import EventStream, encode_batch, ensure_stream
from ingest_server.service import ingest_doors
from runtime.serve import ApiServer, serving
from tests.support.clients import GrpcClients, grpc_clients
from tests.support.env import ServiceStarter
from tests.support.jetstream import events_in
from tests.support.waiting import eventually
from writer.service import RunningWriter, running_writer

DAY = datetime(2025, 11, 14, 10, 0, tzinfo=UTC)


def event(number: int) -> Event:
    result = Event(
        event_id=f"event-{number}",
        site_id="site-1",
        event_type="page_view",
        path=f"/p{number % 17}",
        user_id=f"u{number % 101}",
    )
    result.timestamp.FromDatetime(DAY)
    return result


async def stored_count(db: asyncpg.Connection) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM events")
    return count


async def stored_at_least(db: asyncpg.Connection, count: int) -> bool:
    return await stored_count(db) >= count


async def aggregates(db: asyncpg.Connection) -> tuple[list[tuple[str, int]], tuple[int, int]]:
    paths = await db.fetch("SELECT path, views FROM daily_path_views ORDER BY path")
    totals = await db.fetchrow("SELECT views, users FROM daily_totals")
    return [(row["path"], row["views"]) for row in paths], (
        (totals["views"], totals["users"]) if totals else (0, 0)
    )


def expected_aggregates(numbers: range) -> tuple[list[tuple[str, int]], tuple[int, int]]:
    views = Counter(f"/p{n % 17}" for n in numbers)
    users = {n % 101 for n in numbers}
    return sorted(views.items()), (len(numbers), len(users))


@pytest.fixture
def small_batches(settings: Settings) -> Settings:
    return replace(settings, writer_batch_size=50)


@pytest.fixture
async def ingest_only(small_batches: Settings) -> AsyncIterator[ApiServer]:
    async with serving(small_batches, [ingest_doors]) as addresses:
        yield addresses


async def test_a_writer_killed_mid_stream_and_restarted_loses_and_doubles_nothing(
    ingest_only: ApiServer,
    small_batches: Settings,
    db: asyncpg.Connection,
    services: ServiceStarter,
) -> None:
    total = 6000
    writer = services("writer", small_batches)

    async def produce(clients: GrpcClients) -> None:
        for start in range(0, total, 200):
            response = await clients.ingest.IngestBatch(
                IngestBatchRequest(events=[event(n) for n in range(start, start + 200)])
            )
            assert response.accepted_count == 200
            await asyncio.sleep(0.02)

    async with grpc_clients(ingest_only.grpc) as clients:
        producing = asyncio.create_task(produce(clients))
        for threshold in (500, 1500, 3000):
            await eventually(functools.partial(stored_at_least, db, threshold), True)
            writer.kill()
            writer = services("writer", small_batches)
        await producing

    await eventually(lambda: stored_count(db), total, within=60)
    assert await aggregates(db) == expected_aggregates(range(total))
    assert writer.stop() == 0


async def test_a_resend_after_the_duplicate_window_counts_once(
    writer: RunningWriter, js: JetStreamContext, stream: EventStream, db: asyncpg.Connection
) -> None:
    # JetStream forgets a Nats-Msg-Id after its duplicate window; a resend then reaches the
    # writer as a new message, and the database must absorb it.
    for attempt in ("first", "resend-days-later"):
        message = encode_batch([event(1)], DAY)
        await js.publish(
            stream.subject,
            message,
            headers={"Nats-Msg-Id": attempt},
        )
    await js.publish(stream.subject, encode_batch([event(2)], DAY))

    await eventually(lambda: stored_count(db), 2)
    assert await aggregates(db) == ([("/p1", 1), ("/p2", 1)], (2, 2))


async def test_events_stay_in_the_stream_until_a_writer_stores_them(
    small_batches: Settings,
    ingest_only: ApiServer,
    db: asyncpg.Connection,
    js: JetStreamContext,
    stream: EventStream,
) -> None:
    async with grpc_clients(ingest_only.grpc) as clients:
        await clients.ingest.IngestBatch(IngestBatchRequest(events=[event(n) for n in range(10)]))
    assert len(await events_in(js, stream.name)) == 10

    async with running_writer(small_batches):
        await eventually(lambda: stored_count(db), 10)

    assert await aggregates(db) == expected_aggregates(range(10))
    assert (await js.stream_info(stream.name)).state.messages == 0


async def test_three_writers_share_the_consumer_and_one_killed_mid_stream_loses_nothing(
    ingest_only: ApiServer,
    small_batches: Settings,
    db: asyncpg.Connection,
    services: ServiceStarter,
) -> None:
    total = 6000
    writers = [services("writer", small_batches) for _ in range(3)]

    async with grpc_clients(ingest_only.grpc) as clients:
        for start in range(0, total, 200):
            await clients.ingest.IngestBatch(
                IngestBatchRequest(events=[event(n) for n in range(start, start + 200)])
            )
            if start == 2000:
                await eventually(functools.partial(stored_at_least, db, 1000), True)
                writers.pop(0).kill()

    await eventually(lambda: stored_count(db), total, within=60)
    assert await aggregates(db) == expected_aggregates(range(total))
    assert [writer.stop() for writer in writers] == [0, 0]


async def test_batches_stored_at_once_count_the_events_they_share_once(
    small_batches: Settings, db: asyncpg.Connection, js: JetStreamContext, stream: EventStream
) -> None:
    # The writer stores several batches in concurrent transactions; messages with events in
    # common (a client resending part of a batch) may be stored at the same time.
    total = 2000
    await ensure_stream(js, stream)
    for start in range(0, total, 50):  # each message shares half its events with the next
        events = [event(n) for n in range(start, min(total, start + 100))]
        message = encode_batch(events, DAY)
        await js.publish(stream.subject, message)

    async with running_writer(replace(small_batches, writer_concurrency=4)):
        await eventually(lambda: stored_count(db), total)

    consumer = await js.consumer_info(stream.name, small_batches.writer_durable)
    assert (consumer.num_pending, consumer.num_ack_pending) == (0, 0)
    assert await aggregates(db) == expected_aggregates(range(total))


async def test_messages_on_the_per_site_subjects_of_earlier_versions_are_stored(
    settings: Settings, db: asyncpg.Connection, js: JetStreamContext, stream: EventStream
) -> None:
    # Earlier versions published each site's events on a subject of its own: a stream that
    # still holds such messages after an upgrade is drained all the same.
    await ensure_stream(js, stream)
    events = [event(n) for n in range(3)]
    message = encode_batch(events, DAY)
    await js.publish(f"{stream.subject_prefix}.site-1", message)

    async with running_writer(settings):
        await eventually(lambda: stored_count(db), 3)

    rows = await db.fetch("SELECT event_id FROM events ORDER BY event_id")
    assert [row["event_id"] for row in rows] == ["event-0", "event-1", "event-2"]


async def test_events_stored_while_postgres_terminates_the_writers_sessions_count_once(
    small_batches: Settings, db: asyncpg.Connection, js: JetStreamContext, stream: EventStream
) -> None:
    # PostgreSQL ending a session in the middle of a statement (an administrator, a failover)
    # can leave asyncpg reporting an internal error rather than a lost connection.
    total = 50_000
    await ensure_stream(js, stream)
    for start in range(0, total, 500):
        events = [event(n) for n in range(start, start + 500)]
        message = encode_batch(events, DAY)
        await js.publish(stream.subject, message)

    async with running_writer(replace(small_batches, writer_concurrency=4)):
        for _ in range(100):
            await db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            await asyncio.sleep(0.02)
        await eventually(lambda: stored_count(db), total, within=60)

    assert await aggregates(db) == expected_aggregates(range(total))
