"""The report service's resources: a PostgreSQL pool over a migrated schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from report_server.stats import StatsReader
from stack.config import Settings
from stack.connections import create_pool
from writer.schema import migrate


@asynccontextmanager
async def open_stats_reader(settings: Settings) -> AsyncIterator[StatsReader]:
    """A StatsReader on a pool of connections. It applies the schema migrations too, so the
    report server and the writer may start in either order."""
    pool = await create_pool(settings, max_size=10)
    try:
        await migrate(pool)
        yield StatsReader(pool)
    finally:
        await pool.close()
