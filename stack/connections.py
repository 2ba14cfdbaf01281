"""Connections to NATS and PostgreSQL, made the same way by every service.

At start a service waits for its dependencies, retrying with backoff and saying so in its log,
so that starting the services before the servers (as containers often do) just works.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import nats
from nats.aio.client import Client as NATS

from stack.backoff import Backoff
from stack.config import Settings, redacted

logger = logging.getLogger(__name__)


async def connect_nats(settings: Settings, name: str) -> NATS:
    """A connection that reconnects forever once made; callers bound their own waits."""
    backoff = Backoff(maximum=5.0)
    client: NATS | None = None

    def closing() -> bool:
        return client is not None and (client.is_closed or client.is_draining)

    async def on_error(error: Exception) -> None:
        if not closing():
            logger.warning("NATS: %s", error or type(error).__name__)

    async def on_disconnected() -> None:
        if not closing():
            logger.warning("NATS: disconnected, reconnecting")

    async def on_reconnected() -> None:
        logger.info("NATS: reconnected")

    while True:
        try:
            client = await nats.connect(
                settings.nats_servers,
                name=name,
                connect_timeout=2,
                reconnect_time_wait=1,
                max_reconnect_attempts=-1,
                error_cb=on_error,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
            )
            return client
        except (OSError, TimeoutError, nats.errors.NoServersError) as error:
            delay = backoff.next_delay()
            logger.warning(
                "NATS at %s is not reachable (%s); retrying in %.1fs",
                redacted(",".join(settings.nats_servers)),
                error or type(error).__name__,
                delay,
            )
            await asyncio.sleep(delay)


async def close_nats(nc: NATS) -> None:
    """Flush what we published and close; when NATS is already gone, just close."""
    try:
        await nc.drain()
    except nats.errors.Error as error:
        logger.warning("NATS: could not drain the connection (%r); closing it", error)
        await nc.close()


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


async def create_pool(settings: Settings, max_size: int) -> asyncpg.Pool:
    backoff = Backoff(maximum=5.0)
    while True:
        try:
            return await asyncpg.create_pool(
                settings.database_dsn, min_size=1, max_size=max_size, command_timeout=60
            )
        except POSTGRES_UNAVAILABLE as error:
            delay = backoff.next_delay()
            logger.warning("PostgreSQL is not reachable (%s); retrying in %.1fs", error, delay)
            await asyncio.sleep(delay)
