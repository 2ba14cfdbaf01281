"""An HTTP server of a process's own routes alone (`/metrics`, `/healthz`, `/readyz`), for a
service that has no HTTP door of its own: the writer, at WRITER_HTTP_LISTEN."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from core.settings import Address, Settings
from runtime.health import Dependent, Health, Readiness
from runtime.http_server import HttpServer
from runtime.metrics import HttpObserver, flushing, metrics_routes
from runtime.tls import server_certificate
from transports.cors import Cors
from transports.http_app import Handler, create_app, create_busy_app

# Scrapers and probes, not the public: a handful of connections is plenty.
MAX_CONNECTIONS = 100


@asynccontextmanager
async def serving_ops(
    settings: Settings, listen: Address, ready: Readiness
) -> AsyncIterator[Address]:
    """Serve the routes at `listen` while the block runs; the address with its real port."""
    health = Health([Dependent([], ready)])
    routes: dict[str, dict[str, Handler]] = {**health.routes()}
    if settings.metrics:
        routes.update(metrics_routes())
    cors = Cors(())  # no page of any origin reads these
    http = HttpServer(
        create_app(routes, cors, HttpObserver() if settings.metrics else None),
        create_busy_app(cors),
        listen,
        share_port=False,
        read_timeout=settings.http_read_timeout,
        max_connections=MAX_CONNECTIONS,
        certificate=server_certificate(settings),
    )
    port = await http.start()
    counting = asyncio.create_task(flushing(), name="the metrics' flush")
    try:
        yield Address(listen.host, port)
    finally:
        counting.cancel()
        await http.stop()
