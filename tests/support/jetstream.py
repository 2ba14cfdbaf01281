"""A JetStream context on a server of the tests' choosing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
from analytics.v1.event_pb2 import Event
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from core.stream import decode_message


@asynccontextmanager
async def jetstream(url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


async def events_in(js: JetStreamContext, stream: str) -> list[Event]:
    """Every event held in the stream, in order: the publisher packs several into a message."""
    info = await js.stream_info(stream)
    events: list[Event] = []
    if info.state.messages:
        for sequence in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                message = await js.get_msg(stream, sequence)
            except NotFoundError:
                continue  # acknowledged, so deleted from the work queue
            events.extend(decode_message(message.data or b"").events)
    return events
