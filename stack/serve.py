"""One process serving the gRPC services and the HTTP shim of ingest, report, or both.

`analytics-ingest` and `analytics-report` each run one service; `make run` runs both in one
process, so that gRPC (both services) and HTTP (all routes) each have a single address.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import grpc
import uvicorn
from analytics.v1 import ingest_pb2, report_pb2
from starlette.applications import Starlette

from ingest_server.service import open_ingestor
from ingest_server.servicer import IngestServicer
from report_server.service import open_stats_reader
from report_server.servicer import ReportServicer
from stack.config import Address, Settings
from stack.grpc_services import add_servicer
from stack.http_shim import create_app
from stack.lifecycle import Lifecycle, run_service

GRACE_SECONDS = 5.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiAddresses:
    grpc: Address
    http: Address


@asynccontextmanager
async def serving(settings: Settings, *, ingest: bool, report: bool) -> AsyncIterator[ApiAddresses]:
    """Serve until the block exits, then finish in-flight requests (up to GRACE_SECONDS) and
    close the connections. Yields the bound addresses (ports 0 in settings become real)."""
    async with AsyncExitStack() as stack:
        ingestor = await stack.enter_async_context(open_ingestor(settings)) if ingest else None
        reader = await stack.enter_async_context(open_stats_reader(settings)) if report else None

        grpc_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        if ingestor is not None:
            add_servicer(
                grpc_server,
                ingest_pb2.DESCRIPTOR.services_by_name["IngestService"],
                IngestServicer(ingestor),
            )
        if reader is not None:
            add_servicer(
                grpc_server,
                report_pb2.DESCRIPTOR.services_by_name["ReportService"],
                ReportServicer(reader),
            )
        grpc_port = grpc_server.add_insecure_port(str(settings.grpc_listen))
        await grpc_server.start()
        stack.push_async_callback(grpc_server.stop, GRACE_SECONDS)

        app = create_app(
            ingestor=ingestor,
            stats=reader,
            max_body_bytes=settings.max_body_bytes,
            cors_allow_origins=settings.cors_allow_origins,
        )
        http_port = await stack.enter_async_context(_http_server(app, settings.http_listen))
        yield ApiAddresses(
            Address(settings.grpc_listen.host, grpc_port),
            Address(settings.http_listen.host, http_port),
        )


class _UvicornServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # signals belong to stack.lifecycle, which stops us through should_exit


@asynccontextmanager
async def _http_server(app: Starlette, listen: Address) -> AsyncIterator[int]:
    sock = socket.create_server((listen.host, listen.port))
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(GRACE_SECONDS),
    )
    server = _UvicornServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="http-server")
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.005)
        port: int = sock.getsockname()[1]
        yield port
    finally:
        server.should_exit = True
        await task
        sock.close()


def main_for(name: str, *, ingest: bool, report: bool) -> None:
    """The body of `analytics-ingest`, `analytics-report` and `make run`'s API process."""

    async def serve(settings: Settings, life: Lifecycle) -> None:
        async with serving(settings, ingest=ingest, report=report) as addresses:
            life.started()
            logger.info("%s: gRPC on %s, HTTP on http://%s", name, addresses.grpc, addresses.http)
            await life.stopping.wait()

    run_service(name, serve)


def main() -> None:
    main_for("analytics-api", ingest=True, report=True)


if __name__ == "__main__":
    main()
