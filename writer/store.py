"""Writes rows to PostgreSQL, idempotently, aggregates included."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import asyncpg
from analytics.internal.v1.stream_pb2 import FilteredTraffic

from writer.decoding import Row
from writer.queries import STORE_EVENTS, STORE_FILTERED_TRAFFIC

# PostgreSQL refusing the data itself (class 22 data exception, class 23 integrity constraint
# violation, class 54 program limit exceeded: a value too long for an index entry), as opposed
# to failing for reasons a retry can outlive.
REFUSALS: tuple[type[asyncpg.PostgresError], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.ProgramLimitExceededError,
)


class EventStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def store(self, rows: Sequence[Row]) -> int:
        """Store rows in one transaction; return how many events were new.

        Storing the same events again stores and counts nothing, so a batch may be retried
        after any failure, including one after the commit. Raises one of REFUSALS when
        PostgreSQL refuses some row.
        """
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(Row._fields)
        async with self._pool.acquire() as connection:
            stored: int = await connection.fetchval(STORE_EVENTS, *map(list, columns))
        return stored

    async def store_filtered(self, window: FilteredTraffic) -> bool:
        """Add one window of drop counts, once; whether it was new. Raises one of REFUSALS
        when PostgreSQL refuses it, ValueError for a day that is not YYYY-MM-DD."""
        counts = window.counts
        async with self._pool.acquire() as connection:
            added: bool = await connection.fetchval(
                STORE_FILTERED_TRAFFIC,
                window.window_id,
                [count.site_id for count in counts],
                [date.fromisoformat(count.day) for count in counts],
                [count.reason for count in counts],
                [count.count for count in counts],
            )
        return added
