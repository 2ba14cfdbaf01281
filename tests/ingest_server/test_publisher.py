"""Group commit: concurrent events share JetStream messages, and each caller hears of its own."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import nats
import pytest
from analytics.internal.v1.stream_pb2 import EventBatch
from analytics.v1.event_pb2 import Event
from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from core.errors import Unavailable
from core.settings import Settings
from core.stream import MAX_MESSAGE_BYTES, MAX_MESSAGE_EVENTS, EventStream, ensure_stream
from ingest_server.publisher import EventPublisher
from tests.support.jetstream import events_in

RECEIVED = datetime(2025, 11, 14, 12, 0, tzinfo=UTC)


def event(n: int, site: str = "site-1") -> Event:
    return Event(event_id=f"e-{n}", site_id=site, event_type="page_view", path=f"/p{n}")


@pytest.fixture
async def nc(settings: Settings) -> AsyncIterator[NATS]:
    connection = await nats.connect(settings.nats_url or "")
    yield connection
    await connection.close()


@pytest.fixture
async def publisher(nc: NATS, stream: EventStream) -> EventPublisher:
    await ensure_stream(nc.jetstream(), stream)
    publisher = EventPublisher(nc, stream, timeout=2.0)
    await publisher.start()
    return publisher


async def messages_in(js: JetStreamContext, stream: EventStream) -> int:
    return (await js.stream_info(stream.name)).state.messages


async def test_events_of_many_sites_published_in_the_same_turn_share_one_message(
    publisher: EventPublisher, js: JetStreamContext, stream: EventStream
) -> None:
    await asyncio.gather(
        *(publisher.publish([event(n, site=f"site-{n % 7}")], RECEIVED) for n in range(100))
    )

    assert [e.event_id for e in await events_in(js, stream.name)] == [f"e-{n}" for n in range(100)]
    assert await messages_in(js, stream) == 1


async def test_events_are_published_on_the_streams_one_subject(
    publisher: EventPublisher, js: JetStreamContext, stream: EventStream
) -> None:
    await publisher.publish([event(1, "a"), event(2, "b.example.com")], RECEIVED)

    stored = await js.get_last_msg(stream.name, stream.subject)
    assert stored.subject == f"{stream.subject_prefix}.all"
    assert [e.event_id for e in EventBatch.FromString(stored.data or b"").events] == ["e-1", "e-2"]


async def test_a_message_carries_the_receive_time(
    publisher: EventPublisher, js: JetStreamContext, stream: EventStream
) -> None:
    await publisher.publish([event(1)], RECEIVED)

    stored = await js.get_last_msg(stream.name, stream.subject)
    assert EventBatch.FromString(stored.data or b"").received_at.ToDatetime(UTC) == RECEIVED


async def test_a_message_carries_the_latest_receive_time_of_its_events(
    publisher: EventPublisher, js: JetStreamContext, stream: EventStream
) -> None:
    later = RECEIVED + timedelta(milliseconds=3)
    await asyncio.gather(
        publisher.publish([event(1)], RECEIVED),
        publisher.publish([event(2)], later),
        publisher.publish([event(3)], RECEIVED),
    )

    stored = await js.get_last_msg(stream.name, stream.subject)
    batch = EventBatch.FromString(stored.data or b"")
    assert [e.event_id for e in batch.events] == ["e-1", "e-2", "e-3"]
    assert batch.received_at.ToDatetime(UTC) == later


async def test_a_message_is_one_serialized_event_batch(
    publisher: EventPublisher, js: JetStreamContext, stream: EventStream
) -> None:
    small = event(1)
    small.properties["plan"] = "pro"
    large = event(2)  # more than 16 KiB: a three-byte length on the wire
    large.properties.update({f"key-{n}": "v" * 1024 for n in range(20)})

    await publisher.publish([small, large], RECEIVED)

    stored = await js.get_last_msg(stream.name, stream.subject)
    expected = EventBatch(events=[small, large])
    expected.received_at.FromDatetime(RECEIVED)
    assert large.ByteSize() > 16 * 1024
    assert EventBatch.FromString(stored.data or b"") == expected


async def test_a_large_batch_is_split_into_messages_of_at_most_500_events(
    publisher: EventPublisher, js: JetStreamContext, stream: EventStream
) -> None:
    await publisher.publish([event(n) for n in range(1001)], RECEIVED)

    assert MAX_MESSAGE_EVENTS == 500
    assert await messages_in(js, stream) == 3
    assert len(await events_in(js, stream.name)) == 1001


async def test_events_too_large_for_one_message_are_split_into_several(
    publisher: EventPublisher, js: JetStreamContext, stream: EventStream
) -> None:
    properties = {f"key-{n}": "v" * 1024 for n in range(32)}
    large = [event(n) for n in range(20)]
    for each in large:
        each.properties.update(properties)

    await publisher.publish(large, RECEIVED)

    assert 20 * large[0].ByteSize() > MAX_MESSAGE_BYTES
    assert await messages_in(js, stream) == 2
    assert [e.event_id for e in await events_in(js, stream.name)] == [f"e-{n}" for n in range(20)]


async def test_a_resent_single_event_is_dropped_by_the_stream(
    publisher: EventPublisher, js: JetStreamContext, stream: EventStream
) -> None:
    await publisher.publish([event(1)], RECEIVED)
    await publisher.publish([event(1)], RECEIVED)

    assert await messages_in(js, stream) == 1


async def test_a_resent_message_of_the_same_events_is_dropped_by_the_stream(
    publisher: EventPublisher, js: JetStreamContext, stream: EventStream
) -> None:
    await publisher.publish([event(1), event(2)], RECEIVED)
    await publisher.publish([event(1), event(2)], RECEIVED)

    assert await messages_in(js, stream) == 1


async def test_an_event_id_shaped_like_the_id_of_other_events_message_drops_nothing(
    publisher: EventPublisher, js: JetStreamContext, stream: EventStream
) -> None:
    digest = hashlib.blake2b(b"site-1/e-1\nsite-1/e-2", digest_size=16).hexdigest()
    await publisher.publish([Event(event_id=f"batch-{digest}", site_id="s", path="/")], RECEIVED)
    await publisher.publish([event(1), event(2)], RECEIVED)

    assert [e.event_id for e in await events_in(js, stream.name)] == [
        f"batch-{digest}",
        "e-1",
        "e-2",
    ]


async def test_publishing_on_a_closed_connection_is_unavailable(
    publisher: EventPublisher, nc: NATS
) -> None:
    await nc.close()

    with pytest.raises(Unavailable, match="the event stream is unreachable"):
        await publisher.publish([event(1)], RECEIVED)


async def test_flush_waits_for_events_whose_caller_gave_up(
    publisher: EventPublisher, js: JetStreamContext, stream: EventStream
) -> None:
    caller = asyncio.create_task(publisher.publish([event(1)], RECEIVED))
    await asyncio.sleep(0)
    caller.cancel()

    await publisher.flush()

    assert [e.event_id for e in await events_in(js, stream.name)] == ["e-1"]


async def test_publishing_no_events_sends_nothing(
    publisher: EventPublisher, js: JetStreamContext, stream: EventStream
) -> None:
    await publisher.publish([], RECEIVED)

    assert await messages_in(js, stream) == 0


async def test_a_caller_that_gives_up_leaves_the_others_of_its_message_waiting(
    publisher: EventPublisher, js: JetStreamContext, stream: EventStream
) -> None:
    leaving = asyncio.create_task(publisher.publish([event(1)], RECEIVED))
    staying = asyncio.create_task(publisher.publish([event(2)], RECEIVED))
    await asyncio.sleep(0)
    leaving.cancel()

    await staying

    assert [e.event_id for e in await events_in(js, stream.name)] == ["e-1", "e-2"]
    assert await messages_in(js, stream) == 1


async def silent_publisher(nc: NATS, publish_timeout: float) -> tuple[EventPublisher, Subscription]:
    """A publisher whose messages nothing stores or refuses: no stream takes their subjects,
    and a listener that never answers (returned, holding what was sent) keeps NATS from
    answering 503 for it."""
    silent = EventStream("NO_SUCH_STREAM", f"test.silent.{nc.new_inbox()[7:]}")
    sent = await nc.subscribe(silent.subjects)
    publisher = EventPublisher(nc, silent, timeout=publish_timeout)
    await publisher.start()
    return publisher, sent


async def test_events_nothing_stores_are_unavailable_by_the_timeout(nc: NATS) -> None:
    publisher, _ = await silent_publisher(nc, publish_timeout=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()

    with pytest.raises(Unavailable, match="did not confirm the events in time"):
        await publisher.publish([event(1)], RECEIVED)

    assert 0.2 <= loop.time() - started < 5.0


async def test_events_waiting_behind_unanswered_messages_are_unavailable_by_the_timeout(
    nc: NATS,
) -> None:
    publisher, _ = await silent_publisher(nc, publish_timeout=0.5)
    loop = asyncio.get_running_loop()
    load = [asyncio.create_task(publisher.publish([event(n) for n in range(1000)], RECEIVED))]
    await asyncio.sleep(0)
    started = loop.time()
    waiting = asyncio.create_task(publisher.publish([event(9)], RECEIVED))
    # Full messages keep coming for as long as it waits, or until far past its timeout.
    while not waiting.done() and loop.time() - started < 10.0:
        load.append(
            asyncio.create_task(publisher.publish([event(n) for n in range(1500)], RECEIVED))
        )
        await asyncio.sleep(0.1)
    answered_while_loaded = waiting.done()

    with pytest.raises(Unavailable, match="did not confirm the events in time"):
        await waiting
    assert answered_while_loaded
    await asyncio.gather(*load, return_exceptions=True)


async def test_events_arriving_while_a_message_awaits_its_puback_wait_for_the_next_message(
    nc: NATS,
) -> None:
    publisher, sent = await silent_publisher(nc, publish_timeout=1.0)
    calls = []
    for n in range(10):  # each call in a turn of its own
        calls.append(asyncio.create_task(publisher.publish([event(n)], RECEIVED)))
        await asyncio.sleep(0.01)
    await nc.flush()

    assert sent.pending_msgs == 1
    await asyncio.gather(*calls, return_exceptions=True)
