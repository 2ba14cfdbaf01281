"""WRITER_LINGER: a fetch that brings fewer events than the batch size waits for more, so that
a steady flow is stored in fewer transactions; a full batch, or a writer asked to stop, does
not wait."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
from analytics.v1.event_pb2 import Event
from nats.js import JetStreamContext

from core.migrator import migrate
from core.settings import Settings
from core.stream import EventStream, encode_batch, ensure_stream
from tests.support import consumers
from tests.support.waiting import eventually
from writer.consumer import EventConsumer
from writer.decoding import Row
from writer.store import EventStore

DAY = datetime(2025, 11, 14, 10, 0, tzinfo=UTC)
# With a batch size of one full message, the first fetch asks for one message.
ONE_MESSAGE_OF_EVENTS = 500
AN_HOUR = 3600.0


class RecordingStore(EventStore):
    """The writer's store, recording the events of each transaction."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self.transactions: list[list[str]] = []

    async def store(self, rows: Sequence[Row]) -> int:
        stored = await super().store(rows)
        self.transactions.append([row.event_id for row in rows])
        return stored


def event(event_id: str) -> Event:
    sent = Event(event_id=event_id, site_id="site-1", event_type="page_view", path="/home")
    sent.timestamp.FromDatetime(DAY)
    return sent


def consumer_of(
    js: JetStreamContext,
    store: EventStore,
    stream: EventStream,
    settings: Settings,
    *,
    batch_size: int,
    linger: float,
) -> EventConsumer:
    """One batch at a time, so that every fetch is the one batch's."""
    return consumers.consumer_of(
        js, store, stream, settings, batch_size=batch_size, concurrency=1, linger=linger
    )


async def publish(js: JetStreamContext, stream: EventStream, *event_ids: str) -> None:
    """One message per event."""
    await ensure_stream(js, stream)
    for event_id in event_ids:
        await js.publish(stream.subject, encode_batch([event(event_id)], DAY))


async def stored_in(consumer: EventConsumer, store: RecordingStore, events: int) -> list[list[str]]:
    """Run the consumer until `events` events are stored; the transactions that stored them."""
    stopping = asyncio.Event()
    running = asyncio.create_task(consumer.run(stopping))

    async def stored() -> int:
        return sum(map(len, store.transactions))

    try:
        await eventually(stored, events)
    finally:
        stopping.set()
        await running
    return store.transactions


async def test_a_short_batch_takes_the_events_that_wait_behind_it(
    settings: Settings, js: JetStreamContext, stream: EventStream, pool: asyncpg.Pool
) -> None:
    await migrate(pool)
    await publish(js, stream, "e-1", "e-2", "e-3")
    store = RecordingStore(pool)
    consumer = consumer_of(
        js, store, stream, settings, batch_size=ONE_MESSAGE_OF_EVENTS, linger=0.2
    )

    assert await stored_in(consumer, store, 3) == [["e-1", "e-2", "e-3"]]


async def test_without_linger_each_fetch_is_stored_as_it_comes(
    settings: Settings, js: JetStreamContext, stream: EventStream, pool: asyncpg.Pool
) -> None:
    await migrate(pool)
    await publish(js, stream, "e-1", "e-2", "e-3")
    store = RecordingStore(pool)
    consumer = consumer_of(js, store, stream, settings, batch_size=ONE_MESSAGE_OF_EVENTS, linger=0)

    assert await stored_in(consumer, store, 3) == [["e-1"], ["e-2", "e-3"]]


async def test_a_full_batch_is_stored_without_lingering(
    settings: Settings, js: JetStreamContext, stream: EventStream, pool: asyncpg.Pool
) -> None:
    await migrate(pool)
    await publish(js, stream, "e-1")
    store = RecordingStore(pool)
    consumer = consumer_of(js, store, stream, settings, batch_size=1, linger=AN_HOUR)

    assert await stored_in(consumer, store, 1) == [["e-1"]]


async def test_a_writer_asked_to_stop_stores_its_lingering_batch_at_once(
    settings: Settings, js: JetStreamContext, stream: EventStream, pool: asyncpg.Pool
) -> None:
    await migrate(pool)
    await publish(js, stream, "e-1")
    store = RecordingStore(pool)
    consumer = consumer_of(
        js, store, stream, settings, batch_size=ONE_MESSAGE_OF_EVENTS, linger=AN_HOUR
    )
    stopping = asyncio.Event()
    running = asyncio.create_task(consumer.run(stopping))
    await consumer.ready.wait()

    async def pending_and_held() -> tuple[int | None, int | None]:
        info = await js.consumer_info(stream.name, settings.writer_durable)
        return info.num_pending, info.num_ack_pending

    fetched: tuple[int | None, int | None] = (0, 1)
    await eventually(pending_and_held, fetched)  # the batch lingers for its hour
    stopping.set()
    await asyncio.wait_for(running, timeout=30)

    assert store.transactions == [["e-1"]]
