"""The report service's resources and doors: a PostgreSQL pool over a schema the writer
migrated, the readers and the site registry both doors call, and a NATS connection over which
the registry publishes site records to the ingest servers. It waits, saying so, until the schema
is at the version it was written for. It is ready while PostgreSQL answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
from analytics.v1 import report_pb2, site_pb2
from nats.aio.client import Client as NATS

from core.database import answers, create_pool
from core.nats_connection import close_nats, connect_nats
from core.retry import retrying
from core.schema import wait_for_schema
from core.settings import Settings
from core.site_records import site_bucket
from core.stream import EventStream, jetstream_not_ready
from report_server import dashboard, http
from report_server.database import ReportDatabase
from report_server.filtered_traffic import FilteredTrafficReader
from report_server.grpc import ReportServicer, SiteServicer
from report_server.live import LiveHub
from report_server.reports import ReportReader
from report_server.site_publishing import SitePublisher
from report_server.sites import SiteRegistry
from report_server.stats import StatsReader
from runtime.metrics import watch_pool
from runtime.serve import Doors

logger = logging.getLogger(__name__)


@asynccontextmanager
async def open_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool of connections, once the schema is at the version this code reads: the report
    server and the writer may start in either order."""
    pool = await create_pool(
        settings,
        max_size=settings.report_pool_size,
        statement_timeout=settings.report_statement_timeout,
    )
    try:
        await wait_for_schema(pool, "analytics-report")
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def report_doors(settings: Settings) -> AsyncIterator[Doors]:
    """ReportService and SiteService over gRPC; `GET /stats`, `/reports/...`, the site routes,
    `GET /filtered-traffic` and the dashboard (`/`) over HTTP. The service connects to NATS
    too: live reports follow the event stream, and the registry publishes site records for the
    ingest servers. It is ready while PostgreSQL answers."""
    async with AsyncExitStack() as resources:
        pool = await resources.enter_async_context(open_pool(settings))
        await resources.enter_async_context(watching_pool(settings, pool))
        nc = await connect_nats(settings, "analytics-report")
        resources.push_async_callback(close_nats, nc)
        publisher = await resources.enter_async_context(_site_publisher(settings, pool, nc))
        database = ReportDatabase(
            pool, settings.report_acquire_timeout, settings.report_statement_timeout
        )
        reader, reports = StatsReader(database), ReportReader(database)
        live = LiveHub(nc, EventStream.from_settings(settings), database)
        filtered = FilteredTrafficReader(pool)
        registry = SiteRegistry(pool, publisher)

        async def postgresql_answers() -> bool:
            return await answers(pool)

        yield Doors(
            servicers=[
                (
                    report_pb2.DESCRIPTOR.services_by_name["ReportService"],
                    ReportServicer(reader, reports, live, filtered),
                ),
                (site_pb2.DESCRIPTOR.services_by_name["SiteService"], SiteServicer(registry)),
            ],
            routes={
                **http.routes(
                    reader=reader,
                    reports=reports,
                    live=live,
                    registry=registry,
                    max_body_bytes=settings.max_body_bytes,
                    filtered=filtered,
                ),
                **dashboard.routes(),
            },
            ready={"postgresql": postgresql_answers},
        )


@asynccontextmanager
async def watching_pool(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[None]:
    """The pool's gauges kept current (with metrics on) while the block runs."""
    if not settings.metrics:
        yield
        return
    watching = asyncio.create_task(watch_pool(pool, "report"), name="the report pool's gauges")
    try:
        yield
    finally:
        watching.cancel()


@asynccontextmanager
async def _site_publisher(
    settings: Settings, pool: asyncpg.Pool, nc: NATS
) -> AsyncIterator[SitePublisher]:
    """The publisher of site records, reconciling the bucket in the background."""
    kv = await retrying(
        lambda: site_bucket(nc.jetstream(), settings.sites_bucket, settings.stream_replicas),
        what="opening the site records' bucket",
        retryable=jetstream_not_ready,
        logger=logger,
    )
    publisher = SitePublisher(kv, pool, settings.sites_reconcile_interval)
    reconciling = asyncio.create_task(publisher.run())
    try:
        yield publisher
    finally:
        reconciling.cancel()
        await asyncio.gather(reconciling, return_exceptions=True)
