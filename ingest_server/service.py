"""The ingest service's resources and doors: a NATS connection, the stream it publishes to, the
site records and visitor keys it keeps from NATS KV, and the Ingestors the doors call (one per
door, each counting its own events)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from analytics.v1 import ingest_pb2
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from core.access import Grant, credential_bucket
from core.kv_watch import WatchedBucket
from core.nats_connection import close_nats, connect_nats
from core.retry import retrying
from core.settings import Settings
from core.stream import EventStream, ensure_stream, jetstream_not_ready
from ingest_server import http
from ingest_server.access import IngestGate
from ingest_server.browsers import Browsers
from ingest_server.countries import Countries
from ingest_server.drops import Drops
from ingest_server.grpc import IngestServicer
from ingest_server.ingestor import Ingestor
from ingest_server.metrics import EventCounts
from ingest_server.publisher import EventPublisher
from ingest_server.site_watch import SiteRecords
from ingest_server.visitors import VisitorKeys
from runtime.serve import Doors

logger = logging.getLogger(__name__)


@asynccontextmanager
async def open_publisher(
    settings: Settings,
) -> AsyncIterator[tuple[NATS, EventStream, EventPublisher]]:
    """A publisher to the configured stream (created if missing), its connection and stream;
    on exit, pending publishes are flushed and the connection closed."""
    nc = await connect_nats(settings, "analytics-ingest")
    try:
        js = nc.jetstream()
        stream = EventStream.from_settings(settings)
        await ensure_stream(js, stream)
        publisher = EventPublisher(nc, stream, settings.publish_timeout, measured=settings.metrics)
        await publisher.start()
        try:
            yield nc, stream, publisher
        finally:
            # Events of callers that gave up may still be on their way; let them arrive.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.publish_timeout):
                    await publisher.flush()
    finally:
        await close_nats(nc)


@asynccontextmanager
async def _browsers(
    settings: Settings, js: JetStreamContext, stream: EventStream
) -> AsyncIterator[Browsers]:
    """The rules for browsers' events, with what they keep in memory (site records, the day's
    visitor keys) loaded before the first request and kept fresh meanwhile; the drops counted
    are published until the end, and once more at it."""

    async def open_kv() -> tuple[SiteRecords, VisitorKeys]:
        replicas = settings.stream_replicas
        sites = await SiteRecords.open(js, settings.sites_bucket, replicas)
        keys = await VisitorKeys.open(js, settings.visitor_keys_bucket, replicas)
        await keys.refresh()
        return sites, keys

    sites, keys = await retrying(
        open_kv, what="opening the key-value buckets", retryable=jetstream_not_ready, logger=logger
    )
    drops = Drops(js, stream, settings.filtered_traffic_interval)
    countries = Countries(settings.geoip_database) if settings.geoip_database else None
    tasks = [asyncio.create_task(job) for job in (sites.run(), keys.run(), drops.run())]
    try:
        await sites.loaded()
        yield Browsers(sites, keys, drops, countries)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(settings.publish_timeout):
                await drops.publish()
        if countries is not None:
            countries.close()


@asynccontextmanager
async def watched_grants(
    settings: Settings, js: JetStreamContext
) -> AsyncIterator[WatchedBucket[Grant]]:
    """The grants of the valid keys and tokens, loaded before the first request and followed
    until the end (core.kv_watch)."""
    kv = await retrying(
        lambda: credential_bucket(js, settings.credentials_bucket, settings.stream_replicas),
        what="opening the credentials' bucket",
        retryable=jetstream_not_ready,
        logger=logger,
    )
    grants = WatchedBucket(kv, Grant.from_entry, "credential")
    watching = asyncio.create_task(grants.run(), name="the credentials' watch")
    try:
        await grants.loaded()
        yield grants
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)


def log_access(settings: Settings) -> None:
    """Say loudly at start what is open without a credential."""
    if settings.ingest_open:
        logger.warning(
            "INGEST_OPEN=1: anyone who reaches this server may send events without an ingest "
            "key for every site whose ingest policy is 'browsers'"
        )
    else:
        logger.info(
            "ingest is private: events need an ingest key, but a browser's (within the site's "
            "allowed origins) for sites whose ingest policy is 'browsers'"
        )


@asynccontextmanager
async def ingest_doors(settings: Settings) -> AsyncIterator[Doors]:
    """IngestService over gRPC, `POST /event(s)` over HTTP; ready while NATS is connected."""
    log_access(settings)
    async with (
        open_publisher(settings) as (nc, stream, publisher),
        _browsers(settings, nc.jetstream(), stream) as browsers,
        watched_grants(settings, nc.jetstream()) as grants,
    ):
        gate = IngestGate(grants, settings.ingest_open)

        def ingestor(door: str) -> Ingestor:
            counts = EventCounts(door if settings.metrics else None)
            return Ingestor(
                publisher,
                browsers=browsers,
                counts=counts,
                sites=browsers.sites,
                keyless_backfill_days=settings.keyless_backfill_days,
            )

        async def nats_connected() -> bool:
            return nc.is_connected

        yield Doors(
            servicers=[
                (
                    ingest_pb2.DESCRIPTOR.services_by_name["IngestService"],
                    IngestServicer(
                        ingestor("grpc"),
                        gate,
                        settings.ingest_stream_max_events,
                        settings.ingest_stream_max_seconds,
                    ),
                )
            ],
            routes=http.routes(
                ingestor("http"), gate, settings.max_body_bytes, settings.trusted_proxies
            ),
            ready={"nats": nats_connected},
        )
