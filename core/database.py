"""Connections to PostgreSQL, made the same way by every service that uses it.

At start a service waits for PostgreSQL, retrying with backoff and saying so in its log, so that
starting the services before the servers (as containers often do) just works.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from core.errors import Unavailable
from core.retry import retrying
from core.settings import Settings

logger = logging.getLogger(__name__)


# The errors meaning PostgreSQL is unreachable, restarting, or out of connections, as opposed
# to refusing what we asked: worth retrying later.
POSTGRES_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,  # the connection was closed under us
    # The server ended the session mid-statement and asyncpg lost track of the connection
    # (MagicStack/asyncpg#784); the pool discards it, so the next attempt gets a new one.
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,  # shutting down, starting up
    asyncpg.InsufficientResourcesError,  # too many connections, disk full
)


# A query of nothing: whether PostgreSQL answers.
PING = "SELECT 1"


async def answers(pool: asyncpg.Pool) -> bool:
    """Whether PostgreSQL answers on a connection of the pool (waiting for a free one as long
    as the caller lets it)."""
    try:
        async with pool.acquire() as connection:
            await connection.fetchval(PING)
    except POSTGRES_UNAVAILABLE:
        return False
    return True


@asynccontextmanager
async def reachable() -> AsyncIterator[None]:
    """PostgreSQL failing to answer, inside the block, becomes Unavailable for the client."""
    try:
        yield
    except POSTGRES_UNAVAILABLE as error:
        raise Unavailable("the database is not reachable; retry") from error


async def create_pool(
    settings: Settings, max_size: int, statement_timeout: float | None = None
) -> asyncpg.Pool:
    """A pool of connections, once PostgreSQL answers. With `statement_timeout` (seconds),
    PostgreSQL cancels a statement of theirs that runs longer (QueryCanceledError)."""
    server_settings = (
        {}
        if statement_timeout is None
        else {"statement_timeout": f"{statement_timeout * 1000:.0f}"}
    )
    return await retrying(
        lambda: asyncpg.create_pool(
            settings.database_dsn,
            min_size=1,
            max_size=max_size,
            command_timeout=60,
            server_settings=server_settings,
        ),
        what="connecting to PostgreSQL",
        retryable=_worth_retrying,
        logger=logger,
    )


def _worth_retrying(error: BaseException) -> bool:
    """PostgreSQL not there yet, rather than a certificate we do not trust (DATABASE_URL's
    `sslmode=verify-full`, say), which waiting would not change."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return False
    return isinstance(error, POSTGRES_UNAVAILABLE)
