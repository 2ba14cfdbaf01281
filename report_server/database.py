"""The report service's reads of PostgreSQL, bounded and answered in our errors: a report waits
at most `acquire_timeout` for a connection (reports holding every connection make the others
answer 503 rather than queue without end), and PostgreSQL cancels a statement that runs past
the pool's statement timeout (answered 429: it costs more than a report may)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from core.database import POSTGRES_UNAVAILABLE
from core.errors import ResourceExhausted, Unavailable

# Rows an export reads from its cursor at a time.
STREAM_PREFETCH = 1000
NO_STATEMENT_TIMEOUT = "SET LOCAL statement_timeout = 0"
NO_JIT = "SET LOCAL jit = off"


class ReportDatabase:
    def __init__(
        self, pool: asyncpg.Pool, acquire_timeout: float, statement_timeout: float
    ) -> None:
        """`acquire_timeout`: seconds a report waits for a connection of the pool;
        `statement_timeout`: the pool's, in seconds, to name it to a client (PostgreSQL
        applies it)."""
        self.pool = pool
        self._acquire_timeout = acquire_timeout
        self._statement_timeout = statement_timeout

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        """Raises Unavailable when PostgreSQL cannot be reached, or no connection of the pool
        is free in time; ResourceExhausted when the statement runs past the timeout."""
        async with self._connection() as connection, _answered(self._statement_timeout):
            rows: list[asyncpg.Record] = await connection.fetch(sql, *args)
        return rows

    async def fetch_without_jit(self, sql: str, *args: object) -> list[asyncpg.Record]:
        """As fetch, with PostgreSQL's JIT compilation off: a statement that reads every event
        of a busy site's range (the visits) is costed high enough to be compiled, which took
        longer than running it (420 of 1030 ms on 110k events, in this machine's PostgreSQL
        15)."""
        async with (
            self._connection() as connection,
            _answered(self._statement_timeout),
            connection.transaction(readonly=True),
        ):
            await connection.execute(NO_JIT)
            rows: list[asyncpg.Record] = await connection.fetch(sql, *args)
        return rows

    async def stream(self, sql: str, *args: object) -> AsyncIterator[asyncpg.Record]:
        """The rows one at a time, read STREAM_PREFETCH at a time through a cursor: however
        many there are, a few thousand are in memory. Errors as fetch's."""
        async with (
            self._connection() as connection,
            _answered(self._statement_timeout),
            connection.transaction(readonly=True),
        ):
            # Its rows go out as the client takes them: an export's length is its size, not a
            # sign of a query gone wrong.
            await connection.execute(NO_STATEMENT_TIMEOUT)
            async for row in connection.cursor(sql, *args, prefetch=STREAM_PREFETCH):
                yield row

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        try:
            connection = await self.pool.acquire(timeout=self._acquire_timeout)
        except TimeoutError:
            raise Unavailable(
                f"no database connection was free within {self._acquire_timeout:g} seconds; retry"
            ) from None
        except POSTGRES_UNAVAILABLE as error:
            raise Unavailable("the database is not reachable; retry") from error
        try:
            yield connection
        finally:
            await self.pool.release(connection)


@asynccontextmanager
async def _answered(statement_timeout: float) -> AsyncIterator[None]:
    """PostgreSQL's failures inside the block as the errors a client is told."""
    try:
        yield
    except asyncpg.QueryCanceledError as error:  # before POSTGRES_UNAVAILABLE, which holds it
        # A retry later, or over fewer days, may finish in time.
        raise ResourceExhausted(
            f"the report ran longer than its bound of {statement_timeout:g} seconds; "
            "retry later or ask for fewer days"
        ) from error
    except POSTGRES_UNAVAILABLE as error:
        raise Unavailable("the database is not reachable; retry") from error
