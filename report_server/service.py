"""The report service's resources and doors: a PostgreSQL pool over a schema the writer
migrated, the readers and the site registry both doors call, and a NATS connection over which
the registry publishes site records to the ingest servers. It waits, saying so, until the schema
is at the version it was written for. It is ready while PostgreSQL answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

import asyncpg
from analytics.v1 import admin_pb2, report_pb2, site_pb2
from nats.js.kv import KeyValue

from core.access import Grant, credential_bucket
from core.database import answers, create_pool
from core.kv_watch import WatchedBucket
from core.nats_connection import close_nats, connect_nats
from core.retry import retrying
from core.schema import wait_for_schema
from core.settings import Settings
from core.site_records import SiteRecord, site_bucket
from core.stream import EventStream, jetstream_not_ready
from report_server import dashboard, http
from report_server.access import ReportGate, log_access
from report_server.credentials import CredentialRegistry
from report_server.database import ReportDatabase
from report_server.filtered_traffic import FilteredTrafficReader
from report_server.grpc import AdminServicer, ReportServicer, SiteServicer
from report_server.live import LiveHub
from report_server.reports import ReportReader
from report_server.site_publishing import SitePublisher
from report_server.sites import SiteRegistry
from report_server.stats import StatsReader
from runtime.metrics import watch_pool
from runtime.serve import Doors

logger = logging.getLogger(__name__)
T = TypeVar("T")


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
    """ReportService, SiteService and AdminService over gRPC; `GET /stats`, `/reports/...`, the
    site and credential routes, `GET /filtered-traffic` and the dashboard (`/`) over HTTP. The
    service connects to NATS too: live reports follow the event stream, and the registries
    publish site records and credential hashes for the ingest servers. It is ready while
    PostgreSQL answers."""
    log_access(settings)
    async with AsyncExitStack() as resources:
        pool = await resources.enter_async_context(open_pool(settings))
        await resources.enter_async_context(watching_pool(settings, pool))
        nc = await connect_nats(settings, "analytics-report")
        resources.push_async_callback(close_nats, nc)
        js = nc.jetstream()
        site_kv = await _bucket(
            lambda: site_bucket(js, settings.sites_bucket, settings.stream_replicas),
            "site records",
        )
        sites = await resources.enter_async_context(
            _watching(WatchedBucket(site_kv, SiteRecord.from_entry, "site record"))
        )
        grant_kv = await _bucket(
            lambda: credential_bucket(js, settings.credentials_bucket, settings.stream_replicas),
            "credentials",
        )
        grants = await resources.enter_async_context(
            _watching(WatchedBucket(grant_kv, Grant.from_entry, "credential"))
        )
        publisher = await resources.enter_async_context(
            _site_publisher(settings, pool, site_kv, sites)
        )
        credentials = CredentialRegistry(pool, grant_kv, grants, settings.sites_reconcile_interval)
        await resources.enter_async_context(_running(credentials.run()))
        gate = ReportGate(
            grants,
            sites,
            reports_open=settings.reports_open,
            admin_open=settings.admin_open,
        )
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
                    ReportServicer(reader, reports, live, filtered, gate),
                ),
                (
                    site_pb2.DESCRIPTOR.services_by_name["SiteService"],
                    SiteServicer(registry, gate),
                ),
                (
                    admin_pb2.DESCRIPTOR.services_by_name["AdminService"],
                    AdminServicer(credentials, gate),
                ),
            ],
            routes={
                **http.routes(
                    gate=gate,
                    credentials=credentials,
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


async def _bucket(opening: Callable[[], Awaitable[KeyValue]], what: str) -> KeyValue:
    """A key-value bucket, opened once JetStream answers."""
    return await retrying(
        opening,
        what=f"opening the {what}' bucket",
        retryable=jetstream_not_ready,
        logger=logger,
    )


@asynccontextmanager
async def _running(job: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """`job` running in the background while the block runs."""
    task = asyncio.create_task(job)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@asynccontextmanager
async def _watching(bucket: WatchedBucket[T]) -> AsyncIterator[WatchedBucket[T]]:
    """The bucket followed while the block runs, its values loaded before it starts."""
    async with _running(bucket.run()):
        await bucket.loaded()
        yield bucket


@asynccontextmanager
async def _site_publisher(
    settings: Settings, pool: asyncpg.Pool, kv: KeyValue, sites: WatchedBucket[SiteRecord]
) -> AsyncIterator[SitePublisher]:
    """The publisher of site records, reconciling the bucket in the background."""
    publisher = SitePublisher(kv, pool, settings.sites_reconcile_interval, sites)
    async with _running(publisher.run()):
        yield publisher
