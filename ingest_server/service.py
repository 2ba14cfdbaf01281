"""The ingest service's resources and doors: a NATS connection, the stream it publishes to, and
the Ingestor both doors call."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from analytics.v1 import ingest_pb2

from core.nats_connection import close_nats, connect_nats
from core.settings import Settings
from core.stream import EventStream, ensure_stream
from ingest_server import http
from ingest_server.grpc import IngestServicer
from ingest_server.ingestor import Ingestor
from ingest_server.publisher import EventPublisher
from runtime.serve import Doors


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


@asynccontextmanager
async def ingest_doors(settings: Settings) -> AsyncIterator[Doors]:
    """IngestService over gRPC, `POST /event(s)` over HTTP."""
    async with open_ingestor(settings) as ingestor:
        yield Doors(
            servicers=[
                (
                    ingest_pb2.DESCRIPTOR.services_by_name["IngestService"],
                    IngestServicer(
                        ingestor,
                        settings.ingest_stream_max_events,
                        settings.ingest_stream_max_seconds,
                    ),
                )
            ],
            routes=http.routes(ingestor, settings.max_body_bytes),
        )
