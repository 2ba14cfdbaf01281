"""What the consumer leaves behind when something no retry outlives makes it fail."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import nats
import nats.errors
import pytest
from analytics.v1.event_pb2 import Event
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from core.migrator import migrate
from core.settings import Settings
from core.stream import EventStream, encode_batch, ensure_stream
from devstack.embedded import EmbeddedNats
from tests.support import consumers
from writer.consumer import EventConsumer
from writer.decoding import Row
from writer.store import EventStore

DAY = datetime(2025, 11, 14, 10, 0, tzinfo=UTC)


class BrokenStore(EventStore):
    """A store with a bug in it: every batch fails with an error that is not an outage."""

    async def store(self, rows: Sequence[Row]) -> int:
        raise RuntimeError("a bug in the store")


def one_event() -> Event:
    event = Event(event_id="e-1", site_id="site-1", event_type="page_view", path="/home")
    event.timestamp.FromDatetime(DAY)
    return event


def consumer_of(
    js: JetStreamContext, store: EventStore, stream: EventStream, settings: Settings
) -> EventConsumer:
    """A consumer storing two batches at once, as the writer does by default."""
    return consumers.consumer_of(
        js, store, stream, settings, batch_size=settings.writer_batch_size, concurrency=2
    )


def fetches_running() -> list[asyncio.Task[object]]:
    return [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "") == "EventConsumer._fetch"
    ]


async def test_a_consumer_that_fails_leaves_no_fetch_running(
    settings: Settings, js: JetStreamContext, stream: EventStream, pool: asyncpg.Pool
) -> None:
    await migrate(pool)
    await ensure_stream(js, stream)
    await js.publish(stream.subject, encode_batch([one_event()], DAY))
    consumer = consumer_of(js, BrokenStore(pool), stream, settings)

    with pytest.raises(ExceptionGroup) as failure:
        await consumer.run(asyncio.Event())

    assert failure.group_contains(RuntimeError, match="a bug in the store")
    assert fetches_running() == []


async def test_a_consumer_whose_nats_connection_closes_for_good_fails(
    settings: Settings, nats_server: EmbeddedNats, stream: EventStream, pool: asyncpg.Pool
) -> None:
    await migrate(pool)
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    consumer = consumer_of(js, EventStore(pool), stream, settings)
    running = asyncio.create_task(consumer.run(asyncio.Event()))
    await consumer.ready.wait()

    await nc.close()

    with pytest.raises(ExceptionGroup) as failure:
        await asyncio.wait_for(running, timeout=30)
    assert failure.group_contains(nats.errors.ConnectionClosedError)
    assert fetches_running() == []


class DisconnectingStore(EventStore):
    """A store that loses the consumer's NATS connection right after a commit."""

    def __init__(self, pool: asyncpg.Pool, nc: NATS) -> None:
        super().__init__(pool)
        self._nc = nc

    async def store(self, rows: Sequence[Row]) -> int:
        stored = await super().store(rows)
        await self._nc.close()
        return stored


async def test_an_acknowledgement_that_cannot_be_sent_is_a_warning(
    settings: Settings,
    nats_server: EmbeddedNats,
    stream: EventStream,
    pool: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await migrate(pool)
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_stream(js, stream)
    await js.publish(stream.subject, encode_batch([one_event()], DAY))
    consumer = consumer_of(js, DisconnectingStore(pool, nc), stream, settings)
    caplog.set_level(logging.WARNING, logger="writer.consumer")

    with pytest.raises(ExceptionGroup):
        await asyncio.wait_for(consumer.run(asyncio.Event()), timeout=30)

    assert [
        record.getMessage()
        for record in caplog.records
        if record.getMessage().startswith("could not acknowledge")
    ] == [
        "could not acknowledge message 1 (ConnectionClosedError: nats: connection closed); "
        "JetStream redelivers what it does not hear of"
    ]
