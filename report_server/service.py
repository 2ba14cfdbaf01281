"""The report service's resources and doors: a PostgreSQL pool over a schema the writer
migrated, and the StatsReader both doors call. It only reads: it waits, saying so, until the
schema is at the version it was written for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
from analytics.v1 import report_pb2, site_pb2

from core.database import create_pool
from core.nats_connection import close_nats, connect_nats
from core.schema import wait_for_schema
from core.settings import Settings
from core.stream import EventStream
from report_server import http
from report_server.database import ReportDatabase
from report_server.grpc import ReportServicer, SiteServicer
from report_server.live import LiveHub
from report_server.reports import ReportReader
from report_server.sites import SiteRegistry
from report_server.stats import StatsReader
from runtime.serve import Doors


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
    """ReportService and SiteService over gRPC; `GET /stats`, `/reports/...` and the site routes
    over HTTP. Live reports follow the event stream, so the service connects to NATS too."""
    async with AsyncExitStack() as resources:
        pool = await resources.enter_async_context(open_pool(settings))
        nc = await connect_nats(settings, "analytics-report")
        resources.push_async_callback(close_nats, nc)
        database = ReportDatabase(
            pool, settings.report_acquire_timeout, settings.report_statement_timeout
        )
        reader, reports = StatsReader(database), ReportReader(database)
        live = LiveHub(nc, EventStream.from_settings(settings), database)
        registry = SiteRegistry(pool)
        yield Doors(
            servicers=[
                (
                    report_pb2.DESCRIPTOR.services_by_name["ReportService"],
                    ReportServicer(reader, reports, live),
                ),
                (site_pb2.DESCRIPTOR.services_by_name["SiteService"], SiteServicer(registry)),
            ],
            routes=http.routes(reader, reports, live, registry, settings.max_body_bytes),
        )
