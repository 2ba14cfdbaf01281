"""The ingest service's resources: a NATS connection and the stream it publishes to."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ingest_server.ingestor import Ingestor
from ingest_server.publisher import EventPublisher
from stack.config import Settings
from stack.connections import close_nats, connect_nats
from stack.stream import EventStream, ensure_stream


@asynccontextmanager
async def open_ingestor(settings: Settings) -> AsyncIterator[Ingestor]:
    """An Ingestor publishing to the configured stream (created if missing); on exit, pending
    publishes are flushed and the connection closed."""
    nc = await connect_nats(settings, "analytics-ingest")
    try:
        js = nc.jetstream()
        stream = EventStream.from_settings(settings)
        await ensure_stream(js, stream)
        publisher = EventPublisher(nc, stream, settings.publish_timeout)
        await publisher.start()
        try:
            yield Ingestor(publisher)
        finally:
            # Events of callers that gave up may still be on their way; let them arrive.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.publish_timeout):
                    await publisher.flush()
    finally:
        await close_nats(nc)
