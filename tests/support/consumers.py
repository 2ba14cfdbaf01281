"""The writer's consumer as tests make it: from the settings, as the writer's service does, but
for what a test chooses of how it batches."""

from __future__ import annotations

from nats.js import JetStreamContext

from core.settings import Settings
from core.stream import DeadLetterStream, EventStream
from writer.consumer import EventConsumer
from writer.dead_letters import DeadLetters
from writer.store import EventStore


def consumer_of(
    js: JetStreamContext,
    store: EventStore,
    stream: EventStream,
    settings: Settings,
    *,
    batch_size: int,
    concurrency: int,
    linger: float = 0.0,
) -> EventConsumer:
    return EventConsumer(
        js,
        store,
        stream,
        DeadLetters(js, DeadLetterStream.from_settings(settings)),
        durable=settings.writer_durable,
        batch_size=batch_size,
        concurrency=concurrency,
        ack_wait=settings.writer_ack_wait,
        max_deliveries=settings.writer_max_deliveries,
        linger=linger,
    )
