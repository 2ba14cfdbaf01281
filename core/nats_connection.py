"""Connections to NATS, made the same way by every service.

At start a service waits for NATS, retrying with backoff and saying so in its log, so that
starting the services before the servers (as containers often do) just works.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from typing import Any

import nats
from nats.aio.client import Client as NATS

from core.retry import retrying
from core.settings import Settings, redacted

logger = logging.getLogger(__name__)


def nats_options(settings: Settings) -> dict[str, Any]:
    """How `nats.connect` reaches the configured servers, beyond their URLs (which may hold a
    user and password, or a token): the TLS context for a server that requires TLS, with our
    CAs and client certificate where settings name them (else nats-py trusts the system's
    CAs), and a credentials file."""
    options: dict[str, Any] = {}
    ca, cert, key = (
        settings.nats_tls_ca_file,
        settings.nats_tls_cert_file,
        settings.nats_tls_key_file,
    )
    if ca is not None or cert is not None:
        context = ssl.create_default_context(cafile=ca)
        if cert is not None:
            context.load_cert_chain(cert, key)
        options["tls"] = context
    if settings.nats_creds_file is not None:
        options["user_credentials"] = str(settings.nats_creds_file)
    return options


async def connect_nats(settings: Settings, name: str) -> NATS:
    """A connection that reconnects forever once made; callers bound their own waits."""
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

    async def connect() -> NATS:
        nonlocal client
        client = await nats.connect(
            settings.nats_servers,
            name=name,
            connect_timeout=2,
            reconnect_time_wait=1,
            max_reconnect_attempts=-1,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
            **nats_options(settings),
        )
        return client

    return await retrying(
        connect,
        what=f"connecting to NATS at {redacted(','.join(settings.nats_servers))}",
        retryable=lambda error: isinstance(
            error, OSError | TimeoutError | nats.errors.NoServersError
        ),
        logger=logger,
    )


async def close_nats(nc: NATS) -> None:
    """Flush what we published and close; when NATS is already gone, just close."""
    try:
        await nc.drain()
    except nats.errors.Error as error:
        logger.warning("NATS: could not drain the connection (%r); closing it", error)
        # nats-py's close flushes its socket, which raises when the connection was lost
        # while reconnecting; the connection is closed all the same.
        with contextlib.suppress(ConnectionError):
            await nc.close()
