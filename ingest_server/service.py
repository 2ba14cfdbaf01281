"""The ingest service's resources and doors: a NATS connection, the stream it publishes to, and
the Ingestors the doors call (one per door, each counting its own events)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from analytics.v1 import ingest_pb2
from nats.aio.client import Client as NATS

from core.nats_connection import close_nats, connect_nats
from core.settings import Settings
from core.stream import EventStream, ensure_stream
from ingest_server import http
from ingest_server.grpc import IngestServicer
from ingest_server.ingestor import Ingestor
from ingest_server.metrics import EventCounts
from ingest_server.publisher import EventPublisher
from runtime.serve import Doors


@asynccontextmanager
async def open_publisher(settings: Settings) -> AsyncIterator[tuple[NATS, EventPublisher]]:
    """A publisher to the configured stream (created if missing), and its connection; on
    exit, pending publishes are flushed and the connection closed."""
    nc = await connect_nats(settings, "analytics-ingest")
    try:
        js = nc.jetstream()
        stream = EventStream.from_settings(settings)
        await ensure_stream(js, stream)
        publisher = EventPublisher(nc, stream, settings.publish_timeout, measured=settings.metrics)
        await publisher.start()
        try:
            yield nc, publisher
        finally:
            # Events of callers that gave up may still be on their way; let them arrive.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.publish_timeout):
                    await publisher.flush()
    finally:
        await close_nats(nc)


@asynccontextmanager
async def ingest_doors(settings: Settings) -> AsyncIterator[Doors]:
    """IngestService over gRPC, `POST /event(s)` over HTTP; ready while NATS is connected."""
    async with open_publisher(settings) as (nc, publisher):

        def ingestor(door: str) -> Ingestor:
            return Ingestor(publisher, counts=EventCounts(door if settings.metrics else None))

        async def nats_connected() -> bool:
            return nc.is_connected

        yield Doors(
            servicers=[
                (
                    ingest_pb2.DESCRIPTOR.services_by_name["IngestService"],
                    IngestServicer(
                        ingestor("grpc"),
                        settings.ingest_stream_max_events,
                        settings.ingest_stream_max_seconds,
                    ),
                )
            ],
            routes=http.routes(ingestor("http"), settings.max_body_bytes),
            ready={"nats": nats_connected},
        )
