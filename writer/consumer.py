"""The durable pull consumer: fetch a batch, store it, acknowledge it, repeat.

Messages are acknowledged only after their events are committed, so a crash at any point
leaves them to be redelivered; the store's idempotency makes the redelivery harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC

import asyncpg
import nats.errors
from analytics.v1.event_pb2 import EventBatch
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from stack.backoff import Backoff
from stack.stream import EventStream
from writer.store import EventStore, ReceivedEvent

FETCH_TIMEOUT_SECONDS = 0.5

logger = logging.getLogger(__name__)


class EventConsumer:
    def __init__(
        self,
        js: JetStreamContext,
        store: EventStore,
        stream: EventStream,
        *,
        durable: str,
        batch_size: int,
        ack_wait: float,
    ) -> None:
        self._js = js
        self._store = store
        self._stream = stream
        self._durable = durable
        self._batch_size = batch_size
        self._ack_wait = ack_wait

    async def run(self, stopping: asyncio.Event) -> None:
        """Consume until `stopping` is set, then return after the batch in hand is stored."""
        await self._js.add_consumer(
            self._stream.name,
            ConsumerConfig(
                durable_name=self._durable,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self._ack_wait,
                max_ack_pending=max(10_000, 4 * self._batch_size),
                filter_subject=self._stream.subjects,
            ),
        )
        subscription = await self._js.pull_subscribe_bind(self._durable, self._stream.name)
        logger.info("consuming %s as %s", self._stream.name, self._durable)
        try:
            while not stopping.is_set():
                try:
                    messages = await subscription.fetch(
                        self._batch_size, timeout=FETCH_TIMEOUT_SECONDS
                    )
                except nats.errors.TimeoutError:
                    continue
                await self._handle(messages, stopping)
        finally:
            await subscription.unsubscribe()

    async def _handle(self, messages: Sequence[Msg], stopping: asyncio.Event) -> None:
        batch: list[ReceivedEvent] = []
        decoded: list[Msg] = []
        for message in messages:
            try:
                payload = EventBatch.FromString(message.data)
            except DecodeError:
                logger.error(
                    "dropping undecodable message %s on %s",
                    message.metadata.sequence.stream,
                    message.subject,
                )
                await message.term()
                continue
            received_at = payload.received_at.ToDatetime(tzinfo=UTC)
            batch.extend(ReceivedEvent(event, received_at) for event in payload.events)
            decoded.append(message)
        if batch and not await self._store_until_done(batch, decoded, stopping):
            return  # not acknowledged: JetStream redelivers them to the next writer
        for message in decoded:
            await message.ack()

    async def _store_until_done(
        self, batch: Sequence[ReceivedEvent], messages: Sequence[Msg], stopping: asyncio.Event
    ) -> bool:
        """Retry with backoff until the batch is stored (True) or we are asked to stop (False)."""
        backoff = Backoff(initial=0.1, maximum=10.0)
        while True:
            try:
                stored = await self._store.store(batch)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                if stopping.is_set():
                    logger.warning(
                        "stopping with %d events unstored; they will be redelivered", len(batch)
                    )
                    return False
                delay = backoff.next_delay()
                logger.warning(
                    "storing %d events failed (%s: %s); retrying in %.1fs",
                    len(batch),
                    type(error).__name__,
                    error,
                    delay,
                )
                await asyncio.sleep(delay)
                await _still_working_on(messages)
            else:
                logger.debug("stored %d new of %d events", stored, len(batch))
                return True


async def _still_working_on(messages: Sequence[Msg]) -> None:
    """Reset the ack timers so JetStream does not redeliver what we are still retrying. Best
    effort: a redelivery that happens anyway is absorbed by the idempotent store."""
    try:
        for message in messages:
            await message.in_progress()
    except nats.errors.Error as error:
        logger.debug("could not extend ack wait: %r", error)
