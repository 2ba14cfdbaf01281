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
        # The first copy of each (site_id, event_id), in order: the statement takes each once.
        firsts: dict[tuple[str, str], Row] = {}
        for row in rows:
            firsts.setdefault((row.site_id, row.event_id), row)
        # Sent in key order, the order the statement inserts the ids in (Python's order of str
        # is the bytewise order of their UTF-8): PostgreSQL's sort of them is then one pass
        # over sorted input, and the rows go in site by site. PostgreSQL's CPU per event, not
        # the writer's, is what limits the drain (docs/benchmarks.md, "Writer").
        ordered = [firsts[key] for key in sorted(firsts)]
        columns = list(zip(*ordered, strict=True)) if ordered else [()] * len(Row._fields)
        async with self._pool.acquire() as connection:
            # Prepared anew (unnamed) for every batch, so that PostgreSQL plans it for this
            # batch's arrays (under a millisecond). Cached, it would get the generic plan after
            # five batches, which guesses 10 rows per array: with a DISTINCT ON this statement
            # once had, that plan nested-looped over thousands of rows, 10-20 times slower
            # (docs/benchmarks.md, "Partitioned raw events").
            statement = await connection.prepare(STORE_EVENTS, name="")
            stored: int = await statement.fetchval(*map(list, columns))
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
