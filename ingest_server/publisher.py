"""Puts validated events on the events stream and waits until JetStream has stored them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime

import nats.errors
from analytics.v1.event_pb2 import Event, EventBatch
from nats.js import JetStreamContext
from nats.js.api import PubAck

from stack.errors import Unavailable
from stack.stream import EventStream

logger = logging.getLogger(__name__)


class EventPublisher:
    def __init__(self, js: JetStreamContext, stream: EventStream, timeout: float) -> None:
        self._js = js
        self._stream = stream
        self._timeout = timeout

    async def publish(self, events: Sequence[Event], received_at: datetime) -> None:
        """Return once every event is stored in the stream (its PubAck arrived).

        Each event travels as its own message with `Nats-Msg-Id` set to its event_id, so
        JetStream drops a resend within its duplicate window; the writer's idempotent insert
        absorbs any later one. Raises Unavailable when JetStream does not confirm in time:
        then some of the events may be stored and a retry with the same event_ids is safe.
        """
        acks: list[asyncio.Future[PubAck]] = []
        try:
            async with asyncio.timeout(self._timeout):
                for event in events:
                    ack = await self._js.publish_async(
                        self._stream.subject_for(event.site_id),
                        _message(event, received_at),
                        stream=self._stream.name,
                        headers={"Nats-Msg-Id": event.event_id},
                    )
                    acks.append(ack)
                await asyncio.gather(*acks)
        except (TimeoutError, nats.errors.Error) as error:
            for ack in acks:
                ack.cancel()
            logger.warning("publishing %d events failed: %r", len(events), error)
            raise Unavailable("the event stream did not confirm the events; retry") from error


def _message(event: Event, received_at: datetime) -> bytes:
    batch = EventBatch(events=[event])
    batch.received_at.FromDatetime(received_at)
    return batch.SerializeToString()
