"""The report service's resources and doors: a PostgreSQL pool over a schema the writer
migrated, and the StatsReader both doors call. It only reads: it waits, saying so, until the
schema is at the version it was written for. It is ready while PostgreSQL answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from analytics.v1 import report_pb2, site_pb2

from core.database import answers, create_pool
from core.schema import wait_for_schema
from core.settings import Settings
from report_server import http
from report_server.grpc import ReportServicer, SiteServicer
from report_server.sites import SiteRegistry
from report_server.stats import StatsReader
from runtime.metrics import watch_pool
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
    """ReportService and SiteService over gRPC; `GET /stats` and the site routes over HTTP."""
    async with open_pool(settings) as pool, watching_pool(settings, pool):
        reader = StatsReader(
            pool, settings.report_acquire_timeout, settings.report_statement_timeout
        )
        registry = SiteRegistry(pool)

        async def postgresql_answers() -> bool:
            return await answers(pool)

        yield Doors(
            servicers=[
                (report_pb2.DESCRIPTOR.services_by_name["ReportService"], ReportServicer(reader)),
                (site_pb2.DESCRIPTOR.services_by_name["SiteService"], SiteServicer(registry)),
            ],
            routes=http.routes(reader, registry, settings.max_body_bytes),
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
